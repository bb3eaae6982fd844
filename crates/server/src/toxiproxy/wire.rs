//! The Toxiproxy wire format: JSON encoding with Go's quirks, and the exact response shapes.
//!
//! Go's `encoding/json` is mirrored where clients can see it: field order, HTML-safe string
//! escaping, `float32` toxicity printed in its shortest form (`0.7`, `1`), compact output
//! without a trailing newline for successes, and `http.Error`'s `text/plain` with a newline
//! for errors.

use simian_proxy::{ProxyView, Toxic};

/// The version this server reports (a 2.x that clients treat as current).
pub const VERSION: &str = "2.12.0";

/// A JSON string literal, escaped as Go escapes it.
pub fn string(s: &str) -> String {
    let mut out = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    if out.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        out = out
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
            .replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029");
    }
    out
}

/// A `float32` as Go's `encoding/json` prints it.
pub fn float32(f: f32) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let e = format!("{f:e}");
        match e.split_once('e') {
            Some((m, exp)) if !exp.starts_with('-') => format!("{m}e+{exp}"),
            _ => e,
        }
    } else {
        format!("{f}")
    }
}

/// One toxic object.
pub fn toxic(t: &Toxic) -> String {
    let attributes: Vec<String> = t
        .kind
        .attributes()
        .iter()
        .map(|(k, v)| format!("{}:{v}", string(k)))
        .collect();
    format!(
        "{{\"attributes\":{{{}}},\"name\":{},\"type\":{},\"stream\":{},\"toxicity\":{}}}",
        attributes.join(","),
        string(&t.name),
        string(t.kind.type_name()),
        string(&t.stream_text),
        float32(t.toxicity)
    )
}

/// An array of toxics.
pub fn toxics(list: &[Toxic]) -> String {
    format!("[{}]", list.iter().map(toxic).collect::<Vec<_>>().join(","))
}

/// One proxy object (with 2.12's stray `"Logger":{}` member, byte for byte).
pub fn proxy(p: &ProxyView) -> String {
    format!(
        "{{\"name\":{},\"listen\":{},\"upstream\":{},\"enabled\":{},\"Logger\":{{}},\"toxics\":{}}}",
        string(&p.name),
        string(&p.listen),
        string(&p.upstream),
        p.enabled,
        toxics(&p.toxics)
    )
}

/// `GET /proxies`: an object keyed by name, sorted.
pub fn proxy_map(list: &[ProxyView]) -> String {
    let mut sorted: Vec<&ProxyView> = list.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    format!(
        "{{{}}}",
        sorted
            .iter()
            .map(|p| format!("{}:{}", string(&p.name), proxy(p)))
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// A proxy list or `null` when empty (Go's nil slice).
pub fn proxy_list_or_null(list: &[ProxyView]) -> String {
    if list.is_empty() {
        "null".into()
    } else {
        format!("[{}]", list.iter().map(proxy).collect::<Vec<_>>().join(","))
    }
}

/// The error body: `{"error":"...","status":N}` plus a newline.
pub fn error(message: &str, status: u16) -> String {
    format!("{{\"error\":{},\"status\":{status}}}\n", string(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use simian_proxy::{Kind, Stream};

    #[test]
    fn float32_prints_like_go() {
        assert_eq!(float32(1.0), "1");
        assert_eq!(float32(0.7), "0.7");
        assert_eq!(float32(0.5), "0.5");
        assert_eq!(float32(-3.0), "-3");
        assert_eq!(float32(0.0), "0");
        assert_eq!(float32(1e21), "1e+21");
        assert_eq!(float32(1e-7), "1e-7");
    }

    #[test]
    fn strings_are_html_safe() {
        assert_eq!(string("a<b>&c"), "\"a\\u003cb\\u003e\\u0026c\"");
        assert_eq!(string("plain"), "\"plain\"");
    }

    #[test]
    fn toxic_shape_and_order() {
        let t = Toxic {
            name: "latency_downstream".into(),
            kind: Kind::Latency {
                latency: 100,
                jitter: 0,
            },
            stream: Stream::Downstream,
            stream_text: "downstream".into(),
            toxicity: 1.0,
            version: 1,
        };
        assert_eq!(
            toxic(&t),
            r#"{"attributes":{"latency":100,"jitter":0},"name":"latency_downstream","type":"latency","stream":"downstream","toxicity":1}"#
        );
        let p = ProxyView {
            name: "p1".into(),
            listen: "127.0.0.1:34863".into(),
            upstream: "localhost:1".into(),
            enabled: true,
            toxics: vec![],
        };
        assert_eq!(
            proxy(&p),
            r#"{"name":"p1","listen":"127.0.0.1:34863","upstream":"localhost:1","enabled":true,"Logger":{},"toxics":[]}"#
        );
        assert_eq!(
            error("proxy not found", 404),
            "{\"error\":\"proxy not found\",\"status\":404}\n"
        );
    }
}
