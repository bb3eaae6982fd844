//! Kubernetes label selectors (`tier=backend,env!=dev,team in (a,b),!legacy`), parsed once
//! and matched on the client side too.
//!
//! The API server filters by the selector already; Simian matches again what it lists, so
//! that a server or emulator that ignores the selector, or a pod whose labels changed between
//! the list and the kill, never widens what is eligible.

use std::collections::BTreeMap;

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    /// `k=v` or `k==v`.
    Equals(String, String),
    /// `k!=v` (also true when `k` is absent).
    NotEquals(String, String),
    /// `k in (a,b)`.
    In(String, Vec<String>),
    /// `k notin (a,b)` (also true when `k` is absent).
    NotIn(String, Vec<String>),
    /// `k`.
    Exists(String),
    /// `!k`.
    Absent(String),
}

/// A parsed selector: every requirement must hold. The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    text: String,
    requirements: Vec<Requirement>,
}

impl Selector {
    /// Parses `text`; the error says which requirement is wrong and what is expected.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(format!(
                    "empty requirement in selector {text:?}: remove the extra comma"
                ));
            }
            requirements.push(requirement(part).map_err(|why| {
                format!("selector {text:?}: {why} in {part:?} (expected key=value, key!=value, key in (a,b), key notin (a,b), key or !key)")
            })?);
        }
        Ok(Selector {
            text: text.trim().to_string(),
            requirements,
        })
    }

    /// The selector as written, for the API server.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Absent(k) => !labels.contains_key(k),
        })
    }
}

/// Splits at commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::Absent(key_of(key.trim())?));
    }
    for (op, make) in [
        (
            "!=",
            Requirement::NotEquals as fn(String, String) -> Requirement,
        ),
        ("==", Requirement::Equals),
        ("=", Requirement::Equals),
    ] {
        if let Some((k, v)) = part.split_once(op) {
            return Ok(make(key_of(k.trim())?, value_of(v.trim())?));
        }
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if let [key, rest] = words.as_slice() {
        let rest = rest.trim();
        let (negated, list) = if let Some(list) = rest.strip_prefix("notin") {
            (true, list)
        } else if let Some(list) = rest.strip_prefix("in") {
            (false, list)
        } else {
            return Err(format!("unknown operator {rest:?}"));
        };
        let list = list.trim();
        let inner = list
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .ok_or("a set must be in parentheses")?;
        let values = inner
            .split(',')
            .map(|v| value_of(v.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        let key = key_of(key)?;
        return Ok(if negated {
            Requirement::NotIn(key, values)
        } else {
            Requirement::In(key, values)
        });
    }
    Ok(Requirement::Exists(key_of(part)?))
}

fn key_of(key: &str) -> Result<String, String> {
    let valid = !key.is_empty()
        && key.len() <= 316
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid {
        Ok(key.to_string())
    } else {
        Err(format!("invalid label key {key:?}"))
    }
}

fn value_of(value: &str) -> Result<String, String> {
    let valid = value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(value.to_string())
    } else {
        Err(format!("invalid label value {value:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_operator_matches_as_kubernetes_does() {
        let s =
            Selector::parse("tier=backend, env!=dev,team in (a, b),zone notin (z9),app,!legacy")
                .unwrap();
        let base = [("tier", "backend"), ("team", "a"), ("app", "x")];
        assert!(s.matches(&labels(&base)));
        assert!(!s.matches(&labels(&[("tier", "backend"), ("team", "c"), ("app", "x")])));
        assert!(!s.matches(&labels(&[("tier", "backend"), ("team", "a")])));
        let mut with_legacy = labels(&base);
        with_legacy.insert("legacy".into(), "".into());
        assert!(!s.matches(&with_legacy));
        let mut dev = labels(&base);
        dev.insert("env".into(), "dev".into());
        assert!(!s.matches(&dev));
        let mut z9 = labels(&base);
        z9.insert("zone".into(), "z9".into());
        assert!(!s.matches(&z9));
        assert!(Selector::parse("").unwrap().matches(&labels(&[])));
        assert!(
            Selector::parse("a==b")
                .unwrap()
                .matches(&labels(&[("a", "b")]))
        );
    }

    #[test]
    fn bad_selectors_say_which_requirement() {
        for bad in ["tier=back end", "a,,b", "team in a,b", "x ~ y", "=v"] {
            let e = Selector::parse(bad).unwrap_err();
            assert!(e.contains("selector"), "{bad}: {e}");
        }
    }
}
