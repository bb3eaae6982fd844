//! The `http` provider: one request, its output is `{status, headers, body}`.
//!
//! As the reference: `arguments` are the query string of a GET, a JSON body when the
//! `Content-Type` header is `application/json`, form data otherwise; the body is parsed as
//! JSON only when the response says exactly `application/json`; an error status is an
//! output, not a failure; only connection errors and timeouts fail the activity. `timeout`
//! is seconds, or `[connect, read]`. Simian addition: `expected_status` (a code or a list)
//! fails the activity on any other status.

use std::io::Read as _;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use simian_core::escape::query;

use super::{Context, Failure, seconds};
use crate::pyish;

/// The largest response body read (64 MiB).
const BODY_LIMIT: u64 = 64 << 20;

/// Sends the request.
pub fn run(_activity: &Value, provider: &Value, cx: &Context<'_>) -> Result<Value, Failure> {
    let scope = cx.scope;
    let url = match provider.get("url").map(|u| scope.substitute(u)) {
        Some(Value::String(u)) => u,
        Some(other) => pyish::to_str(&other),
        None => return Err(Failure::Failed("a HTTP activity must have a URL".into())),
    };
    let method = provider
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("GET")
        .to_ascii_uppercase();
    let headers = provider.get("headers").map(|h| scope.substitute(h));
    let timeout = provider.get("timeout").map(|t| scope.substitute(t));
    let mut arguments = provider.get("arguments").cloned().unwrap_or(Value::Null);
    if pyish::truthy(&arguments) && !scope.is_empty() {
        arguments = scope.substitute(&arguments);
    }
    let verify_tls = provider.get("verify_tls").is_none_or(pyish::truthy);
    let (connect, read) = match &timeout {
        Some(Value::Array(pair)) if pair.len() == 2 => {
            (seconds(pair.first()), seconds(pair.get(1)))
        }
        Some(t) => (seconds(Some(t)), seconds(Some(t))),
        None => (None, None),
    };
    let request = Request {
        url: url.clone(),
        method,
        headers: headers
            .as_ref()
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .map(|(k, v)| (k.clone(), pyish::to_str(v)))
                    .collect()
            })
            .unwrap_or_default(),
        arguments,
        connect,
        read,
        verify_tls,
    };
    // The request runs on a thread of its own so that a stopped run does not wait for it.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(request.send());
    });
    let output = loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(result) => break result?,
            Err(mpsc::RecvTimeoutError::Timeout) if cx.interrupt.is_tripped() => {
                return Err(Failure::Interrupted);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Failure::Failed(format!("the request to {url} was lost")));
            }
        }
    };
    if let Some(expected) = provider.get("expected_status") {
        let status = &output["status"];
        let ok = match expected {
            Value::Array(list) => list.iter().any(|s| pyish::eq(s, status)),
            one => pyish::eq(one, status),
        };
        if !ok {
            return Err(Failure::Failed(format!(
                "{url} answered HTTP {status}, expected {}",
                pyish::to_str(expected)
            )));
        }
    }
    Ok(output)
}

struct Request {
    url: String,
    method: String,
    headers: Vec<(String, String)>,
    arguments: Value,
    connect: Option<Duration>,
    read: Option<Duration>,
    verify_tls: bool,
}

impl Request {
    fn send(self) -> Result<Value, Failure> {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(self.connect)
            .timeout_recv_response(self.read)
            .timeout_recv_body(self.read)
            .max_redirects(30);
        if !self.verify_tls {
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .disable_verification(true)
                    .build(),
            );
        }
        let agent: ureq::Agent = config.build().into();
        let json_body = self
            .headers
            .iter()
            .any(|(k, v)| k == "Content-Type" && v == "application/json");
        let mut url = self.url.clone();
        let mut body: Option<(Vec<u8>, Option<&str>)> = None;
        if self.method == "GET" {
            let query = form(&self.arguments);
            if !query.is_empty() {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(&query);
            }
        } else if json_body {
            if !self.arguments.is_null() {
                body = Some((self.arguments.to_string().into_bytes(), None));
            }
        } else {
            match &self.arguments {
                Value::Null => {}
                Value::String(s) => body = Some((s.clone().into_bytes(), None)),
                other => {
                    let encoded = form(other);
                    if !encoded.is_empty() {
                        body = Some((
                            encoded.into_bytes(),
                            Some("application/x-www-form-urlencoded"),
                        ));
                    }
                }
            }
        }
        let mut builder = ureq::http::Request::builder()
            .method(self.method.as_str())
            .uri(url.as_str());
        for (k, v) in &self.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if let Some((_, Some(ct))) = &body
            && !self
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            builder = builder.header("Content-Type", *ct);
        }
        let built = builder
            .body(body.map(|(b, _)| b).unwrap_or_default())
            .map_err(|e| Failure::Failed(format!("failed to connect to {}: {e}", self.url)))?;
        let mut response = agent.run(built).map_err(|e| match e {
            ureq::Error::Timeout(_) => {
                Failure::Failed("activity took too long to complete".to_string())
            }
            other => Failure::Failed(format!("failed to connect to {}: {other}", self.url)),
        })?;
        let status = response.status().as_u16();
        let mut headers = Map::new();
        for (name, value) in response.headers() {
            let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
            let key = title_case(name.as_str());
            match headers.get_mut(&key) {
                Some(Value::String(prev)) => {
                    prev.push_str(", ");
                    prev.push_str(&v);
                }
                _ => {
                    headers.insert(key, Value::String(v));
                }
            }
        }
        let is_json =
            headers.get("Content-Type").and_then(Value::as_str) == Some("application/json");
        let mut bytes = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(BODY_LIMIT)
            .read_to_end(&mut bytes)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::TimedOut => {
                    Failure::Failed("activity took too long to complete".to_string())
                }
                _ => Failure::Failed(format!("failed to read the answer of {}: {e}", self.url)),
            })?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = if is_json {
            serde_json::from_str(&text).map_err(|e| {
                Failure::Failed(format!(
                    "{} said its body is application/json, but it is not JSON: {e}",
                    self.url
                ))
            })?
        } else {
            Value::String(text)
        };
        Ok(json!({"status": status, "headers": headers, "body": body}))
    }
}

/// A mapping as `application/x-www-form-urlencoded`, lists as repeated keys, nulls left out.
fn form(v: &Value) -> String {
    let Value::Object(map) = v else {
        return String::new();
    };
    let mut parts = Vec::new();
    for (k, v) in map {
        let values: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            Value::Null => Vec::new(),
            one => vec![one],
        };
        for v in values.into_iter().filter(|v| !v.is_null()) {
            parts.push(format!("{}={}", query(k), query(&pyish::to_str(v))));
        }
    }
    parts.join("&")
}

/// `content-type` as servers usually write it, `Content-Type`.
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}
