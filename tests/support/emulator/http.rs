//! The emulator's HTTP side: an axum server on 127.0.0.1 that parses each request, has the
//! rules decide ([`super::rules::decide`]) and answers as decided: at once, after a delay, or
//! by closing the connection without a byte.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State as AxumState};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::rules::{Action, Answer, Incoming, decide};
use super::state::{State, lock};

/// The server's thread and the way to stop it: dropping it stops the server, dropping the
/// connections still open (a held answer, keep-alive).
pub(super) struct Server {
    pub(super) addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `state` on 127.0.0.1 (a free port), on a thread of its own with its own tokio
    /// runtime, so tests stay plain synchronous functions.
    pub(super) fn start(state: Arc<Mutex<State>>) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("set_nonblocking");
        let addr = listener.local_addr().expect("local_addr");
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let app = Router::new().fallback(handle).with_state(state);

        let thread = std::thread::Builder::new()
            .name(format!("dingtalk-emulator-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("emulator runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("tokio listener");
                    let server = axum::serve(
                        KillableListener(listener),
                        app.into_make_service_with_connect_info::<ConnHandle>(),
                    );
                    tokio::select! {
                        _ = server => {}
                        _ = shutdown_rx => {}
                    }
                });
                // Connections still open (held by Delay, keep-alive) are dropped here.
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("spawn emulator thread");
        Server {
            addr,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Upper bound on bodies read from the socket (DingTalk's limit is checked
/// separately, so over-long bodies are still seen and recorded).
const BODY_READ_LIMIT: usize = 16 * 1024 * 1024;

async fn handle(
    AxumState(state): AxumState<Arc<Mutex<State>>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let incoming = Incoming {
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        query: parse_query(&raw_query),
        raw_query,
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: axum::body::to_bytes(body, BODY_READ_LIMIT)
            .await
            .ok()
            .map(|b| b.to_vec()),
    };
    let action = decide(&mut lock(&state), &incoming);
    match action {
        Action::Answer(answer) => answer.into_response(),
        Action::AnswerAfter(delay, answer) => {
            tokio::time::sleep(delay).await;
            answer.into_response()
        }
        Action::CloseUnanswered => {
            // The stream now fails every read and write, so hyper drops the
            // connection instead of writing this response.
            conn.kill.store(true, Ordering::SeqCst);
            Response::new(Body::empty())
        }
    }
}

/// Per-connection handle given to the handler (as axum connect info) so that
/// it can make its own connection close without an answer.
#[derive(Clone, Debug)]
struct ConnHandle {
    kill: Arc<AtomicBool>,
}

impl Connected<IncomingStream<'_, KillableListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A TCP listener whose connections can be killed from inside the handler.
struct KillableListener(TcpListener);

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = ConnHandle;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, _peer)) => {
                    let kill = Arc::new(AtomicBool::new(false));
                    let handle = ConnHandle { kill: kill.clone() };
                    return (KillableStream { stream, kill }, handle);
                }
                // e.g. too many open files: back off like axum does.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()?;
        Ok(ConnHandle {
            kill: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// A TCP stream that fails all I/O once killed.
struct KillableStream {
    stream: TcpStream,
    kill: Arc<AtomicBool>,
}

impl KillableStream {
    fn killed(&self) -> Option<io::Error> {
        self.kill
            .load(Ordering::SeqCst)
            .then(|| io::Error::new(io::ErrorKind::ConnectionAborted, "killed by emulator fault"))
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.killed() {
            Some(e) => Poll::Ready(Err(e)),
            None => Pin::new(&mut this.stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.killed() {
            Some(e) => Poll::Ready(Err(e)),
            None => Pin::new(&mut this.stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.killed() {
            Some(e) => Poll::Ready(Err(e)),
            None => Pin::new(&mut this.stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.killed() {
            Some(e) => Poll::Ready(Err(e)),
            None => Pin::new(&mut this.stream).poll_shutdown(cx),
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self {
            Answer::Errcode(code, msg) => (
                [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
                json!({ "errcode": code, "errmsg": msg }).to_string(),
            )
                .into_response(),
            Answer::Raw {
                status,
                content_type,
                body,
            } => (status, [(header::CONTENT_TYPE, content_type)], body).into_response(),
            Answer::WithHeaders {
                status,
                headers,
                body,
            } => {
                let mut response = (status, body).into_response();
                for (name, value) in headers {
                    if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
                        response.headers_mut().append(name, v);
                    }
                }
                response
            }
        }
    }
}

/// Splits a query string into form-decoded pairs, keeping order and repeats.
fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

/// application/x-www-form-urlencoded decoding: `+` is a space, `%XX` a byte.
/// A `+` the client forgot to encode thus arrives as a space, as at DingTalk.
fn form_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
