//! The HTTP plumbing every surface shares: the accept loop with its limits, and the reading
//! of request bodies.
//!
//! Bodies are read here, once, for every surface: each surface then answers a request whose
//! body is already in memory, or knows why it is not. Reading in one place is what lets every
//! answer to an unread body carry `connection: close` (the rest of that body is still on the
//! wire, so the connection cannot carry another request), and what bounds the time a client
//! may take to send one, as the header timeout bounds the headers.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's body, once its headers are in: the largest
/// body any surface accepts (8 MiB) needs about 2.2 Mbit/s to arrive in time.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections served at once: half the common `ulimit -n` of 1024, so that the rest of the
/// process (the proxies, the providers) always has descriptors left. Beyond it, clients wait
/// until the header timeout frees a slow client's place.
pub const MAX_API_CONNECTIONS: usize = 512;

/// What one surface accepts from its clients.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest request body, in bytes.
    pub max_body: usize,
    /// How long the request headers may take to arrive.
    pub header_timeout: Duration,
    /// How long the body may take to arrive, once the headers are in.
    pub body_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Limits {
    /// The limits of an API whose bodies are at most `max_body` bytes.
    pub fn api(max_body: usize) -> Limits {
        Limits {
            max_body,
            header_timeout: HEADER_READ_TIMEOUT,
            body_timeout: BODY_READ_TIMEOUT,
            max_connections: MAX_API_CONNECTIONS,
        }
    }
}

/// Why a request's body was not read. The connection closes after the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The body is larger than the surface accepts (the limit, in bytes).
    TooLarge(usize),
    /// The body did not arrive within the time allowed.
    TimedOut(Duration),
    /// The body could not be read: the client went away, or its framing is broken.
    Broken(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge(limit) => write!(f, "the body is larger than {limit} bytes"),
            BodyError::TimedOut(after) => {
                write!(f, "the body did not arrive within {} s", after.as_secs())
            }
            BodyError::Broken(why) => write!(f, "the body could not be read: {why}"),
        }
    }
}

impl BodyError {
    /// The status that answers it: 413, 408, or 400 for a broken body.
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::Broken(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// A request as a surface answers it: the head, and the body read (or why not).
pub type ReadRequest = Request<Result<Bytes, BodyError>>;

/// Reads `req`'s body within `limits`.
async fn read_body(req: Request<Incoming>, limits: Limits) -> ReadRequest {
    let (head, body) = req.into_parts();
    let read = tokio::time::timeout(
        limits.body_timeout,
        Limited::new(body, limits.max_body).collect(),
    )
    .await;
    let body = match read {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(BodyError::TooLarge(limits.max_body)),
        Ok(Err(e)) => Err(BodyError::Broken(e.to_string())),
        Err(_) => Err(BodyError::TimedOut(limits.body_timeout)),
    };
    Request::from_parts(head, body)
}

/// Serves HTTP/1 on `listener` with `handle` until `shutdown` completes.
///
/// Slow clients cannot starve the others: a connection whose request headers or body do not
/// arrive within the `limits` is closed, and at most `limits.max_connections` are served at
/// once (further ones wait in the kernel's backlog, holding no descriptor of ours).
pub async fn serve_connections<H, F>(
    listener: TcpListener,
    limits: Limits,
    handle: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(ReadRequest) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    tokio::pin!(shutdown);
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, _peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "API accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let handle = handle.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req| {
                let handle = handle.clone();
                async move {
                    let req = read_body(req, limits).await;
                    let unread = req.body().is_err();
                    let mut response = handle(req).await;
                    if unread {
                        response
                            .headers_mut()
                            .insert(CONNECTION, HeaderValue::from_static("close"));
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server whose handler answers what it was given: the body's length, or why it has
    /// none (with that error's status).
    async fn server(limits: Limits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_connections(
            listener,
            limits,
            |req: ReadRequest| async move {
                let (status, text) = match req.body() {
                    Ok(b) => (StatusCode::OK, format!("read {}", b.len())),
                    Err(e) => (e.status(), e.to_string()),
                };
                let mut response = Response::new(Full::new(Bytes::from(text)));
                *response.status_mut() = status;
                response
            },
            std::future::pending(),
        ));
        addr
    }

    fn limits() -> Limits {
        Limits {
            max_body: 16,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_millis(300),
            max_connections: 8,
        }
    }

    fn post(body: &str, length: usize) -> String {
        format!("POST / HTTP/1.1\r\nhost: t\r\ncontent-length: {length}\r\n\r\n{body}")
    }

    /// Sends `request` on a new connection to a server with [`limits`] (then, if
    /// `end_writing`, ends the connection's writing side) and returns everything the server
    /// sends until it closes, within 5 s.
    async fn exchange(request: &str, end_writing: bool) -> String {
        let mut c = tokio::net::TcpStream::connect(server(limits()).await)
            .await
            .unwrap();
        c.write_all(request.as_bytes()).await.unwrap();
        if end_writing {
            c.shutdown().await.unwrap();
        }
        let mut all = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut all))
            .await
            .expect("the server closes the connection")
            .unwrap();
        String::from_utf8_lossy(&all).into_owned()
    }

    /// `answer` is one refusal with `status` that says `why` and closes the connection.
    fn assert_refused(answer: &str, status: u16, why: &str) {
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{answer}"
        );
        assert!(answer.contains("connection: close"), "{answer}");
        assert!(answer.contains(why), "{answer}");
        assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer}");
    }

    #[tokio::test]
    async fn a_body_within_the_limit_keeps_the_connection_for_the_next_request() {
        let two = format!("{}{}", post(&"x".repeat(16), 16), post("{}", 2));
        let answers = exchange(&two, true).await;
        assert!(
            answers.contains("read 16") && answers.contains("read 2"),
            "{answers}"
        );
        assert!(!answers.contains("connection: close"), "{answers}");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_and_the_connection_closes() {
        // A second request follows in the same write: it must not be read as one.
        let two = format!("{}{}", post(&"x".repeat(40), 40), post("{}", 2));
        let answer = exchange(&two, false).await;
        assert_refused(&answer, 413, "the body is larger than 16 bytes");
    }

    #[tokio::test]
    async fn a_body_that_stalls_is_cut_off_after_the_body_timeout() {
        let began = std::time::Instant::now();
        let answer = exchange(&post("x", 10), false).await;
        assert_refused(&answer, 408, "the body did not arrive within");
        assert!(
            began.elapsed() >= Duration::from_millis(250),
            "{:?}",
            began.elapsed()
        );
    }

    #[tokio::test]
    async fn a_body_whose_framing_is_broken_is_refused_and_the_connection_closes() {
        let broken = "POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n";
        let answer = exchange(broken, false).await;
        assert_refused(&answer, 400, "the body could not be read");
    }
}
