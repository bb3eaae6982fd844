//! Request bodies, decoded as Go's `encoding/json` would decode them into Toxiproxy's structs,
//! with its error texts (`bad request body: ...`), since clients show them to people.

use serde_json::{Map, Value};
use simian_proxy::{NewProxy, NewToxic, ProxyUpdate};

/// Go's name for a JSON value's kind, as in "cannot unmarshal string into ...".
fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
    }
}

fn mismatch(v: &Value, field: &str, go_type: &str) -> String {
    let what = match v {
        Value::Number(n) if go_type == "int64" || go_type == "float32" => format!("number {n}"),
        other => kind(other),
    };
    format!(
        "bad request body: json: cannot unmarshal {what} into Go struct field {field} of type {go_type}"
    )
}

/// Parses a body as JSON, with Go's messages for empty and malformed input.
pub fn parse(body: &[u8]) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("bad request body: EOF".into());
    }
    serde_json::from_slice(body).map_err(|e| {
        let text = String::from_utf8_lossy(body);
        let offset = text
            .lines()
            .take(e.line().saturating_sub(1))
            .map(|l| l.len() + 1)
            .sum::<usize>()
            + e.column().saturating_sub(1);
        match text[offset.min(text.len())..].chars().next() {
            _ if e.is_eof() => "bad request body: unexpected EOF".to_string(),
            Some(c) => {
                format!("bad request body: invalid character '{c}' looking for beginning of value")
            }
            None => "bad request body: unexpected EOF".to_string(),
        }
    })
}

fn object<'a>(v: &'a Value, go_type: &str) -> Result<Option<&'a Map<String, Value>>, String> {
    match v {
        Value::Object(m) => Ok(Some(m)),
        Value::Null => Ok(None),
        other => Err(format!(
            "bad request body: json: cannot unmarshal {} into Go value of type {go_type}",
            kind(other)
        )),
    }
}

fn string_field(m: &Map<String, Value>, key: &str, go: &str) -> Result<Option<String>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(mismatch(other, &format!("{go}.{key}"), "string")),
    }
}

fn bool_field(m: &Map<String, Value>, key: &str, go: &str) -> Result<Option<bool>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(mismatch(other, &format!("{go}.{key}"), "bool")),
    }
}

/// `POST /proxies` and each `/populate` entry.
pub fn new_proxy(v: &Value) -> Result<NewProxy, String> {
    let Some(m) = object(v, "proxy.Proxy")? else {
        return Ok(NewProxy {
            enabled: true,
            ..NewProxy::default()
        });
    };
    Ok(NewProxy {
        name: string_field(m, "name", "Proxy")?.unwrap_or_default(),
        listen: string_field(m, "listen", "Proxy")?.unwrap_or_default(),
        upstream: string_field(m, "upstream", "Proxy")?.unwrap_or_default(),
        enabled: bool_field(m, "enabled", "Proxy")?.unwrap_or(true),
    })
}

/// `POST|PATCH /proxies/{p}`.
pub fn proxy_update(v: &Value) -> Result<ProxyUpdate, String> {
    let Some(m) = object(v, "proxy.Proxy")? else {
        return Ok(ProxyUpdate::default());
    };
    Ok(ProxyUpdate {
        listen: string_field(m, "listen", "Proxy")?,
        upstream: string_field(m, "upstream", "Proxy")?,
        enabled: bool_field(m, "enabled", "Proxy")?,
    })
}

fn go_toxic_type(type_name: &str) -> &'static str {
    match type_name {
        "latency" => "LatencyToxic",
        "bandwidth" => "BandwidthToxic",
        "slow_close" => "SlowCloseToxic",
        "timeout" => "TimeoutToxic",
        "reset_peer" => "ResetToxic",
        "slicer" => "SlicerToxic",
        "limit_data" => "LimitDataToxic",
        _ => "NoopToxic",
    }
}

/// The `attributes` object: integer values for known keys (unknown keys are ignored).
fn attributes(m: &Map<String, Value>, type_name: &str) -> Result<Vec<(String, i64)>, String> {
    let attrs = match m.get("attributes") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(a)) => a,
        Some(other) => {
            return Err(mismatch(
                other,
                "ToxicWrapper.attributes",
                "map[string]interface {}",
            ));
        }
    };
    let known: Vec<&str> = simian_proxy::Kind::zeroed(type_name)
        .map(|k| k.attributes().iter().map(|(k, _)| *k).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (key, value) in attrs {
        if !known.contains(&key.as_str()) {
            continue;
        }
        let field = format!("{}.{key}", go_toxic_type(type_name));
        match value {
            Value::Number(n) => match n.as_i64() {
                Some(i) => out.push((key.clone(), i)),
                None => return Err(mismatch(value, &field, "int64")),
            },
            Value::Null => {}
            other => return Err(mismatch(other, &field, "int64")),
        }
    }
    Ok(out)
}

/// `toxicity`, as Go decodes a `float32`: any number that fits (values outside [0, 1] are
/// accepted, as Toxiproxy accepts them), and Go's range error for one that does not (`1e39`),
/// which would otherwise become infinity and make every later listing invalid JSON.
fn toxicity(m: &Map<String, Value>) -> Result<Option<f32>, String> {
    const FIELD: &str = "ToxicWrapper.toxicity";
    match m.get("toxicity") {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() && f.abs() <= f64::from(f32::MAX) => Ok(Some(f as f32)),
            _ => Err(mismatch(v, FIELD, "float32")),
        },
        Some(other) => Err(mismatch(other, FIELD, "float32")),
    }
}

/// A `/populate` body (or a `--config` file): every proxy decoded and checked, or the first
/// problem, in Toxiproxy's words with the proxy's 1-based position.
pub fn new_proxies(v: &Value) -> Result<Vec<NewProxy>, String> {
    let Some(items) = v.as_array() else {
        return Err(format!(
            "bad request body: json: cannot unmarshal {} into Go value of type []proxy.Proxy",
            kind(v)
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let p = new_proxy(item)?;
            p.check().map_err(|e| format!("{e} at proxy {}", i + 1))?;
            Ok(p)
        })
        .collect()
}

/// `POST /proxies/{p}/toxics`. The type is read first so the attributes decode into it.
pub fn new_toxic(v: &Value) -> Result<NewToxic, String> {
    let empty = Map::new();
    let m = object(v, "toxics.ToxicWrapper")?.unwrap_or(&empty);
    let type_name = string_field(m, "type", "ToxicWrapper")?.unwrap_or_default();
    Ok(NewToxic {
        name: string_field(m, "name", "ToxicWrapper")?,
        stream: string_field(m, "stream", "ToxicWrapper")?.filter(|s| !s.is_empty()),
        toxicity: toxicity(m)?,
        attributes: attributes(m, &type_name)?,
        type_name,
    })
}

/// A toxic update: attribute values to merge, and a new toxicity.
pub type ToxicChange = (Vec<(String, i64)>, Option<f32>);

/// `POST|PATCH /proxies/{p}/toxics/{t}`: attributes of `type_name`, and toxicity.
pub fn toxic_update(v: &Value, type_name: &str) -> Result<ToxicChange, String> {
    let empty = Map::new();
    let m = object(v, "toxics.ToxicWrapper")?.unwrap_or(&empty);
    Ok((attributes(m, type_name)?, toxicity(m)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toxicity_that_does_not_fit_a_float32_is_refused_as_go_refuses_it() {
        let body = |t: &str| {
            parse(format!(r#"{{"type": "latency", "toxicity": {t}}}"#).as_bytes()).unwrap()
        };
        for t in ["1e39", "-1e39", "3.5e38"] {
            let e = new_toxic(&body(t)).unwrap_err();
            assert!(
                e.starts_with("bad request body: json: cannot unmarshal number")
                    && e.ends_with("into Go struct field ToxicWrapper.toxicity of type float32"),
                "{t}: {e}"
            );
        }
        for (t, want) in [("0.5", 0.5), ("2", 2.0), ("-1", -1.0), ("3.4e38", 3.4e38)] {
            assert_eq!(new_toxic(&body(t)).unwrap().toxicity, Some(want), "{t}");
        }
    }

    #[test]
    fn go_error_texts() {
        assert_eq!(parse(b"").unwrap_err(), "bad request body: EOF");
        assert_eq!(
            parse(b"{bad").unwrap_err(),
            "bad request body: invalid character 'b' looking for beginning of value"
        );
        let v = parse(br#"{"name": 3}"#).unwrap();
        assert_eq!(
            new_proxy(&v).unwrap_err(),
            "bad request body: json: cannot unmarshal number into Go struct field Proxy.name of type string"
        );
        let v = parse(br#"{"type": "latency", "attributes": {"latency": "slow"}}"#).unwrap();
        assert_eq!(
            new_toxic(&v).unwrap_err(),
            "bad request body: json: cannot unmarshal string into Go struct field LatencyToxic.latency of type int64"
        );
        let v = parse(br#"{"type": "latency", "attributes": {"latency": 1.5}}"#).unwrap();
        assert!(new_toxic(&v).unwrap_err().contains("number 1.5"));
        let v =
            parse(br#"{"type": "latency", "attributes": {"latency": 5, "color": "red"}}"#).unwrap();
        assert_eq!(
            new_toxic(&v).unwrap().attributes,
            vec![("latency".to_string(), 5)]
        );
    }
}
