//! Everything DingTalk-specific: signing, message bodies within DingTalk's limits, and the HTTP
//! client that reads DingTalk's answers. Knows nothing of files, rules or time windows: it takes
//! an [`Endpoint`] (built by the config) and neutral [`Alert`](crate::alert::Alert)s.

pub mod client;
pub mod endpoint;
pub mod message;
pub mod neutral;
pub mod sign;

pub use client::{Client, ErrorClass, SendError};
pub use endpoint::Endpoint;
pub use message::{MAX_BODY_BYTES, Message, RenderContext};
