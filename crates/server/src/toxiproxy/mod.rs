//! The Toxiproxy-compatible control API.
//!
//! Routes (Toxiproxy 2.12):
//!
//! | route | methods |
//! |---|---|
//! | `/version` | GET |
//! | `/proxies` | GET, POST |
//! | `/populate` | POST |
//! | `/reset` | POST |
//! | `/metrics` | GET (with `proxy_metrics` or `runtime_metrics`) |
//! | `/proxies/{proxy}` | GET, POST, PATCH, DELETE |
//! | `/proxies/{proxy}/toxics` | GET, POST |
//! | `/proxies/{proxy}/toxics/{toxic}` | GET, POST, PATCH, DELETE |
//!
//! Transport rules, as upstream: a browser `User-Agent` gets 403; every response carries an
//! `X-Toxiproxy-Request-Id`; an unknown path is `404 page not found`; a known path with the
//! wrong method is an empty 405; successes are compact JSON without a newline; errors are
//! `{"error":...,"status":...}` with a newline, served as `text/plain`.

pub mod body;
pub mod wire;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use hyper::{Method, Response, StatusCode};
use simian_proxy::{ProxyError, Registry};
use tokio::net::TcpListener;

use crate::http::{BodyError, Limits, ReadRequest};

/// What the API serves beyond the proxies.
#[derive(Clone, Debug, Default)]
pub struct ApiOptions {
    /// Serve `toxiproxy_proxy_*_bytes_total` on `/metrics`.
    pub proxy_metrics: bool,
    /// Serve process metrics on `/metrics`.
    pub runtime_metrics: bool,
}

/// Largest request body accepted (populate files of thousands of proxies fit easily).
const MAX_BODY: usize = 8 * 1024 * 1024;
const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

/// The API's state.
pub struct Api {
    registry: Arc<Registry>,
    options: ApiOptions,
    started: SystemTime,
    request_ids: RequestIds,
}

impl Api {
    /// An API over `registry`.
    pub fn new(registry: Arc<Registry>, options: ApiOptions) -> Arc<Api> {
        Arc::new(Api {
            registry,
            options,
            started: SystemTime::now(),
            request_ids: RequestIds::new(),
        })
    }

    /// Answers one request.
    pub async fn handle(&self, req: ReadRequest) -> Response<Full<Bytes>> {
        let mut response = self.route(req).await;
        if let Ok(id) = HeaderValue::from_str(&self.request_ids.next()) {
            response.headers_mut().insert("x-toxiproxy-request-id", id);
        }
        response
    }

    async fn route(&self, req: ReadRequest) -> Response<Full<Bytes>> {
        let browser = req
            .headers()
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ua| ua.starts_with("Mozilla/"));
        if browser {
            return text(StatusCode::FORBIDDEN, "User agent not allowed\n");
        }
        let method = req.method().clone();
        let path = percent_decode(req.uri().path());
        let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(&path).split('/').collect();
        let body = match req.into_body() {
            Ok(b) => b,
            Err(BodyError::TooLarge(_)) => {
                return error(400, "bad request body: request body too large");
            }
            Err(e) => return error(400, &format!("bad request body: {e}")),
        };
        let allowed: &[Method] = match segments.as_slice() {
            ["version"] => &[Method::GET],
            ["proxies"] => &[Method::GET, Method::POST],
            ["populate"] | ["reset"] => &[Method::POST],
            ["metrics"] if self.options.proxy_metrics || self.options.runtime_metrics => {
                &[Method::GET]
            }
            ["proxies", p] if !p.is_empty() => {
                &[Method::GET, Method::POST, Method::PATCH, Method::DELETE]
            }
            ["proxies", p, "toxics"] if !p.is_empty() => &[Method::GET, Method::POST],
            ["proxies", p, "toxics", t] if !p.is_empty() && !t.is_empty() => {
                &[Method::GET, Method::POST, Method::PATCH, Method::DELETE]
            }
            _ => return text(StatusCode::NOT_FOUND, "404 page not found\n"),
        };
        if !allowed.contains(&method) {
            return empty(StatusCode::METHOD_NOT_ALLOWED);
        }
        let r = &self.registry;
        match (segments.as_slice(), &method) {
            (["version"], _) => {
                let mut resp = Response::new(Full::new(Bytes::from(format!(
                    "{{\"version\": \"{}\"}}\n",
                    wire::VERSION
                ))));
                resp.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/json;charset=utf-8"),
                );
                resp
            }
            (["metrics"], _) => self.metrics(),
            (["proxies"], &Method::GET) => json(StatusCode::OK, wire::proxy_map(&r.list())),
            (["proxies"], _) => match body::parse(&body).and_then(|v| body::new_proxy(&v)) {
                Err(e) => error(400, &e),
                Ok(p) => match r.create(p) {
                    Ok(view) => json(StatusCode::CREATED, wire::proxy(&view)),
                    Err(e) => proxy_error(&e),
                },
            },
            (["populate"], _) => self.populate(&body),
            (["reset"], _) => match r.reset() {
                Ok(()) => empty(StatusCode::NO_CONTENT),
                Err(e) => proxy_error(&e),
            },
            (["proxies", p], &Method::GET) => result(r.get(p).map(|v| wire::proxy(&v))),
            (["proxies", p], &Method::DELETE) => match r.delete(p) {
                Ok(()) => empty(StatusCode::NO_CONTENT),
                Err(e) => proxy_error(&e),
            },
            (["proxies", p], _) => match body::parse(&body).and_then(|v| body::proxy_update(&v)) {
                Err(e) => error(400, &e),
                Ok(u) => result(r.update(p, u).map(|v| wire::proxy(&v))),
            },
            (["proxies", p, "toxics"], &Method::GET) => {
                result(r.toxics(p).map(|t| wire::toxics(&t)))
            }
            (["proxies", p, "toxics"], _) => {
                if let Err(e) = r.get(p) {
                    return proxy_error(&e);
                }
                match body::parse(&body).and_then(|v| body::new_toxic(&v)) {
                    Err(e) => error(400, &e),
                    Ok(t) => result(r.add_toxic(p, t).map(|t| wire::toxic(&t))),
                }
            }
            (["proxies", p, "toxics", t], &Method::GET) => {
                result(r.toxic(p, t).map(|t| wire::toxic(&t)))
            }
            (["proxies", p, "toxics", t], &Method::DELETE) => match r.remove_toxic(p, t) {
                Ok(()) => empty(StatusCode::NO_CONTENT),
                Err(e) => proxy_error(&e),
            },
            (["proxies", p, "toxics", t], _) => {
                let current = match r.toxic(p, t) {
                    Ok(c) => c,
                    Err(e) => return proxy_error(&e),
                };
                match body::parse(&body)
                    .and_then(|v| body::toxic_update(&v, current.kind.type_name()))
                {
                    Err(e) => error(400, &e),
                    Ok((attributes, toxicity)) => result(
                        r.update_toxic(p, t, attributes, toxicity)
                            .map(|t| wire::toxic(&t)),
                    ),
                }
            }
            _ => text(StatusCode::NOT_FOUND, "404 page not found\n"),
        }
    }

    fn populate(&self, body: &[u8]) -> Response<Full<Bytes>> {
        let populate_error = |status: u16, message: &str, proxies: String| {
            let mut resp = Response::new(Full::new(Bytes::from(format!(
                "{{\"error\":{},\"status\":{status},\"proxies\":{proxies}}}",
                wire::string(message)
            ))));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
            resp
        };
        let value = match body::parse(body) {
            Ok(v) => v,
            Err(e) => return populate_error(400, &e, "null".into()),
        };
        let list = match body::new_proxies(&value) {
            Ok(list) => list,
            Err(e) => return populate_error(400, &e, "null".into()),
        };
        let (done, failure) = self.registry.populate(list);
        match failure {
            None => json(
                StatusCode::CREATED,
                format!("{{\"proxies\":{}}}", wire::proxy_list_or_null(&done)),
            ),
            Some(e) => populate_error(e.status(), &e.to_string(), wire::proxy_list_or_null(&done)),
        }
    }

    fn metrics(&self) -> Response<Full<Bytes>> {
        let mut out = String::new();
        if self.options.proxy_metrics {
            for (metric, pick) in [("received", 0usize), ("sent", 1)] {
                let name = format!("toxiproxy_proxy_{metric}_bytes_total");
                out.push_str(&format!("# HELP {name} \n# TYPE {name} counter\n"));
                for c in self.registry.counters() {
                    for (direction, (received, sent)) in [
                        ("downstream", c.downstream_bytes),
                        ("upstream", c.upstream_bytes),
                    ] {
                        let value = if pick == 0 { received } else { sent };
                        out.push_str(&format!(
                            "{name}{{direction=\"{direction}\",listener=\"{}\",proxy=\"{}\",upstream=\"{}\"}} {value}\n",
                            label(&c.listen),
                            label(&c.name),
                            label(&c.upstream)
                        ));
                    }
                }
            }
        }
        if self.options.runtime_metrics {
            out.push_str(&process_metrics(self.started));
        }
        out.push_str("# HELP promhttp_metric_handler_errors_total Total number of internal errors encountered by the promhttp metric handler.\n# TYPE promhttp_metric_handler_errors_total counter\npromhttp_metric_handler_errors_total{cause=\"encoding\"} 0\npromhttp_metric_handler_errors_total{cause=\"gathering\"} 0\n");
        let mut resp = Response::new(Full::new(Bytes::from(out)));
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        resp
    }
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `process_*` metrics from /proc (the Go collectors' names for the same facts).
fn process_metrics(started: SystemTime) -> String {
    let mut out = String::new();
    let page = 4096u64;
    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
        let fields: Vec<u64> = statm
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        if let (Some(vsize), Some(rss)) = (fields.first(), fields.get(1)) {
            out.push_str(&format!("# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}\n", rss * page));
            out.push_str(&format!("# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes {}\n", vsize * page));
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        out.push_str(&format!("# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {}\n", fds.count()));
    }
    let start = started
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    out.push_str(&format!("# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {start}\n"));
    out
}

fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    resp
}

/// A `text/plain` response with `nosniff`, as Go's `http.Error` writes it.
fn plain(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT));
    resp.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    plain(status, Bytes::from_static(body.as_bytes()))
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

fn error(status: u16, message: &str) -> Response<Full<Bytes>> {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    plain(code, Bytes::from(wire::error(message, status)))
}

fn proxy_error(e: &ProxyError) -> Response<Full<Bytes>> {
    error(e.status(), &e.to_string())
}

fn result(r: Result<String, ProxyError>) -> Response<Full<Bytes>> {
    match r {
        Ok(body) => json(StatusCode::OK, body),
        Err(e) => proxy_error(&e),
    }
}

/// 20-character request ids in the shape of Go's `xid` (time, machine, pid, counter; base32hex).
struct RequestIds {
    machine: [u8; 3],
    counter: AtomicU32,
}

impl RequestIds {
    fn new() -> RequestIds {
        RequestIds {
            machine: rand::random(),
            counter: AtomicU32::new(rand::random()),
        }
    }

    fn next(&self) -> String {
        const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as u32;
        let pid = std::process::id() as u16;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut raw = [0u8; 12];
        raw[..4].copy_from_slice(&secs.to_be_bytes());
        raw[4..7].copy_from_slice(&self.machine);
        raw[7..9].copy_from_slice(&pid.to_be_bytes());
        raw[9..].copy_from_slice(&n.to_be_bytes()[1..]);
        let mut bits: u128 = 0;
        for b in raw {
            bits = (bits << 8) | u128::from(b);
        }
        bits <<= 4; // 96 bits -> 100 bits, 20 groups of 5
        (0..20)
            .rev()
            .map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize] as char)
            .collect()
    }
}

/// Serves the API on `listener` until `shutdown` completes, then stops every proxy. Slow
/// clients cannot starve the others: see [`crate::http::serve_connections`].
pub async fn serve(listener: TcpListener, api: Arc<Api>, shutdown: impl Future<Output = ()>) {
    let handler = api.clone();
    crate::http::serve_connections(
        listener,
        Limits::api(MAX_BODY),
        move |req| {
            let api = handler.clone();
            async move { api.handle(req).await }
        },
        shutdown,
    )
    .await;
    api.registry.shutdown();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_look_like_xids() {
        let ids = RequestIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'v').contains(&c))
        );
    }

    #[test]
    fn paths_decode() {
        assert_eq!(percent_decode("/proxies/a%2Fb"), "/proxies/a/b");
        assert_eq!(percent_decode("/proxies/a%20b"), "/proxies/a b");
        assert_eq!(percent_decode("/x%2"), "/x%2");
        assert_eq!(percent_decode("/x%zz"), "/x%zz");
        assert_eq!(percent_decode("/é%é"), "/é%é");
    }
}
