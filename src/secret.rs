//! A string that must never be printed: webhook URLs (they carry the access token) and signing
//! secrets.
//!
//! `Debug` and `Display` print a fixed mask, so a secret inside any config struct, error or
//! panic message stays hidden; the only way to the value is the explicit [`Secret::expose`].

use std::fmt;

/// A secret string; see the module docs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that must use it (signing, building the request).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neither_debug_nor_display_show_the_value() {
        let s = Secret::new("SECtopsecret");
        assert_eq!(
            format!("{s:?} {s} {:?}", Some(&s)),
            "Secret(***) *** Some(Secret(***))"
        );
        assert_eq!(s.expose(), "SECtopsecret");
    }
}
