//! `${name}` substitution, as the reference runner does it.
//!
//! Strings anywhere in an activity's provider may name a configuration value or a secret:
//! `${name}` (or `$name`) is replaced by its value, `$$` is a literal `$`, and a name that is
//! neither configuration nor secret is left as written (it may be meant for the target). A
//! string that is exactly `${name}` takes the value itself, with its type (a number stays a
//! number); inside a longer string a value is written as Python would write it.

use serde_json::{Map, Value};

use crate::pyish;

/// Where `${name}` looks: the configuration first, then each scope of secrets in order.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// The loaded configuration.
    pub configuration: Map<String, Value>,
    /// The loaded secrets, scope by scope.
    pub secrets: Map<String, Value>,
}

impl Scope {
    /// The value `name` stands for, if any.
    pub fn lookup(&self, name: &str) -> Option<&Value> {
        self.configuration.get(name).or_else(|| {
            self.secrets
                .values()
                .filter_map(Value::as_object)
                .find_map(|scope| scope.get(name))
        })
    }

    /// True when there is nothing to substitute from (the reference then leaves some
    /// arguments untouched, `$$` included).
    pub fn is_empty(&self) -> bool {
        self.configuration.is_empty() && self.secrets.is_empty()
    }

    /// `value` with every string in it substituted.
    pub fn substitute(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => self.substitute_str(s),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.substitute(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.substitute(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// One string substituted: exactly `${name}` keeps the value's type.
    pub fn substitute_str(&self, s: &str) -> Value {
        if let Some(name) = s
            .strip_prefix("${")
            .and_then(|rest| rest.strip_suffix('}'))
            .filter(|name| is_identifier(name))
            && let Some(v) = self.lookup(name)
        {
            return v.clone();
        }
        Value::String(self.substitute_text(s))
    }

    /// Every `$name`, `${name}` and `$$` in `s` replaced, values written as Python would.
    pub fn substitute_text(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
                continue;
            }
            let (name, len) = if let Some(inner) = after.strip_prefix('{') {
                match inner.find('}') {
                    Some(end) if is_identifier(&inner[..end]) => (&inner[..end], end + 2),
                    _ => ("", 0),
                }
            } else {
                let end = identifier_len(after);
                (&after[..end], end)
            };
            match self.lookup(name).filter(|_| !name.is_empty()) {
                Some(v) => out.push_str(&pyish::to_str(v)),
                None => {
                    out.push('$');
                    out.push_str(&after[..len]);
                }
            }
            rest = &after[len..];
        }
        out.push_str(rest);
        out
    }
}

/// Python's `string.Template` identifier: ASCII letter or `_`, then letters, digits, `_`.
fn is_identifier(s: &str) -> bool {
    !s.is_empty() && identifier_len(s) == s.len()
}

fn identifier_len(s: &str) -> usize {
    let mut len = 0;
    for (i, c) in s.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        len = i + c.len_utf8();
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> Scope {
        let configuration = json!({"port": 8080, "host": "localhost", "ratio": 0.5});
        let secrets = json!({"auth": {"token": "s3cret"}});
        Scope {
            configuration: configuration.as_object().cloned().unwrap_or_default(),
            secrets: secrets.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn an_exact_reference_keeps_the_type() {
        assert_eq!(scope().substitute_str("${port}"), json!(8080));
        assert_eq!(scope().substitute_str("${token}"), json!("s3cret"));
    }

    #[test]
    fn references_inside_text_are_written_as_python_would() {
        let s = scope();
        assert_eq!(
            s.substitute_str("http://${host}:$port/x?r=${ratio}"),
            json!("http://localhost:8080/x?r=0.5")
        );
        assert_eq!(
            s.substitute_str("$$5 ${nope} $nope $"),
            json!("$5 ${nope} $nope $")
        );
        assert_eq!(s.substitute_str("${ho st}"), json!("${ho st}"));
    }

    #[test]
    fn containers_are_substituted_throughout() {
        assert_eq!(
            scope().substitute(&json!({"a": ["${port}", {"b": "${host}"}], "c": 1})),
            json!({"a": [8080, {"b": "localhost"}], "c": 1})
        );
    }
}
