//! A local HTTP/1.1 server that plays a provider: it records every request and answers each
//! with what the test scripted (a JSON body, an SSE stream that ends, stalls or breaks, or
//! nothing at all).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, `GET`, ...
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body, as sent.
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first value of the header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; a body that is not JSON fails the test.
    #[allow(
        clippy::expect_used,
        reason = "an assertion helper: a body that is not JSON fails the test"
    )]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    /// The body as JSON, if it is.
    pub fn try_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How a streamed answer ends.
#[derive(Debug, Clone, Copy)]
pub enum End {
    /// The server closes the connection cleanly after the last event.
    Close,
    /// The server keeps the connection open and sends nothing more (a stalled stream).
    Hold,
    /// The server resets the connection (TCP RST).
    Reset,
}

/// What the server answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete response with a body.
    Body {
        /// HTTP status.
        status: u16,
        /// Headers besides `content-length` and `connection`.
        headers: Vec<(String, String)>,
        /// The body.
        body: String,
    },
    /// `200 text/event-stream`, the events written one by one, then `end`.
    Sse {
        /// The events, each with its blank-line separator.
        events: Vec<String>,
        /// How the stream ends.
        end: End,
    },
    /// Read the request and never answer.
    Silent,
}

impl Reply {
    /// A response with a JSON body.
    pub fn json(status: u16, body: &str) -> Self {
        Self::Body {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_owned(),
        }
    }

    /// The response with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let Self::Body { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// The SSE events of a fixture, whole.
    pub fn sse(fixture: &str) -> Self {
        Self::Sse {
            events: events(fixture),
            end: End::Close,
        }
    }
}

/// A fixture's SSE events (separated by blank lines), each with its separator.
pub fn events(fixture: &str) -> Vec<String> {
    fixture
        .split("\n\n")
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| format!("{e}\n\n"))
        .collect()
}

type Handler = dyn Fn(&Recorded, usize) -> Reply + Send + Sync;

/// A running server; stops (dropping held connections) when dropped.
pub struct MockServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    accept: tokio::task::JoinHandle<()>,
}

/// A listening socket whose address is known before the server answers anything (for
/// answers that must name the server's own address).
pub struct Bound {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    listener: TcpListener,
}

impl Bound {
    /// Serves every request with `handler(request, index of the request)`.
    pub fn serve(
        self,
        handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
    ) -> MockServer {
        let Self { base, listener } = self;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = requests.clone();
        let accept = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((socket, _)) = listener.accept().await {
                let (handler, seen) = (handler.clone(), seen.clone());
                connections.spawn(serve(socket, handler, seen));
            }
        });
        MockServer {
            base,
            requests,
            accept,
        }
    }
}

impl MockServer {
    /// A socket on `127.0.0.1` with a free port, not answering yet.
    #[allow(
        clippy::expect_used,
        reason = "test support: a test without its server cannot run"
    )]
    pub async fn bind() -> Bound {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port on 127.0.0.1");
        let addr = listener.local_addr().expect("the bound address");
        Bound {
            base: format!("http://{addr}"),
            listener,
        }
    }

    /// Serves every request with `handler(request, index of the request)`.
    pub async fn start(
        handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::bind().await.serve(handler)
    }

    /// Answers the requests with `replies`, in order (a 500 once they run out).
    pub async fn replies(replies: Vec<Reply>) -> Self {
        Self::start(move |_, i| {
            replies
                .get(i)
                .cloned()
                .unwrap_or_else(|| Reply::json(500, r#"{"error":"no more scripted replies"}"#))
        })
        .await
    }

    /// Answers every request with `reply`.
    pub async fn always(reply: Reply) -> Self {
        Self::start(move |_, _| reply.clone()).await
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.requests).clone()
    }

    /// The only request received.
    #[allow(
        clippy::panic,
        reason = "an assertion helper: another number of requests fails the test"
    )]
    pub fn only_request(&self) -> Recorded {
        let mut requests = self.requests();
        match requests.len() {
            1 => requests.remove(0),
            n => panic!("expected one request, got {n}: {requests:#?}"),
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn serve(mut socket: TcpStream, handler: Arc<Handler>, seen: Arc<Mutex<Vec<Recorded>>>) {
    let Some(request) = read_request(&mut socket).await else {
        return;
    };
    let index = {
        let mut seen = lock(&seen);
        seen.push(request.clone());
        seen.len() - 1
    };
    match handler(&request, index) {
        Reply::Body {
            status,
            headers,
            body,
        } => {
            let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
            for (name, value) in &headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str(&format!(
                "content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            ));
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(body.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
        Reply::Sse { events, end } => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for event in events {
                if socket.write_all(event.as_bytes()).await.is_err() {
                    return;
                }
                let _ = socket.flush().await;
            }
            match end {
                End::Close => {
                    let _ = socket.shutdown().await;
                }
                End::Hold => hold(socket).await,
                End::Reset => {
                    let _ = socket.set_zero_linger();
                    drop(socket);
                }
            }
        }
        Reply::Silent => hold(socket).await,
    }
}

/// Keeps the connection open, sending nothing, until the client goes away (or the server is
/// dropped).
async fn hold(mut socket: TcpStream) {
    let mut buf = [0u8; 64];
    while let Ok(n) = socket.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

async fn read_request(socket: &mut TcpStream) -> Option<Recorded> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_owned();
    let target = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = data[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&buf[..n]);
    }
    Some(Recorded {
        method,
        target,
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Status",
    }
}

/// A port on this machine where nothing listens.
pub async fn closed_port() -> String {
    let bound = MockServer::bind().await;
    bound.base
}

/// A lock, whether or not a panicking test thread poisoned it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
