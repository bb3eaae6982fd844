//! The few Python value semantics that the Chaos Toolkit format leans on.
//!
//! Experiment files are JSON or YAML, but the reference runner evaluates them with Python's
//! rules: `1 == 1.0 == True`, a non-empty dict is true, a number becomes `"1.0"` when it is
//! put into a string, `None` prints as `None`. Verdicts must be the same as the reference's,
//! so those rules live here, once, and every comparison goes through them.

use serde_json::Value;

/// Python's `==` on JSON values: numbers (and booleans, which are numbers in Python) compare
/// by value, containers element by element.
pub fn eq(a: &Value, b: &Value) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => return x == y,
        (Some(_), None) | (None, Some(_)) => return false,
        (None, None) => {}
    }
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| eq(v, w)))
        }
        _ => false,
    }
}

/// The value as a Python number (`True` is 1), if it is one.
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// Python's truth value.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Python's `str()` of the value, as the reference puts values into strings (`${x}` inside a
/// longer string, process arguments).
pub fn to_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => repr(other),
    }
}

/// Python's `repr()` of the value.
pub fn repr(v: &Value) -> String {
    match v {
        Value::Null => "None".to_string(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => float(f),
            _ => n.to_string(),
        },
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(repr).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(o) => {
            let items: Vec<String> = o
                .iter()
                .map(|(k, v)| format!("'{k}': {}", repr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// Python's `repr()` of a float: always with a fractional part or an exponent.
fn float(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if f.fract() == 0.0 && f.abs() < 1e16 {
        return format!("{f:.1}");
    }
    if f.abs() >= 1e16 || f.abs() < 1e-4 {
        let s = format!("{f:e}");
        // Rust writes 1e20 and 1.5e-7; Python writes 1e+20 and 1.5e-07.
        if let Some((m, e)) = s.split_once('e') {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            return format!("{m}e{sign}{digits:0>2}");
        }
        return s;
    }
    f.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_value_as_in_python() {
        assert!(eq(&json!(1), &json!(1.0)));
        assert!(eq(&json!(true), &json!(1)));
        assert!(!eq(&json!("1"), &json!(1)));
        assert!(eq(&json!([1, {"a": 2.0}]), &json!([1.0, {"a": 2}])));
    }

    #[test]
    fn strings_are_made_as_python_makes_them() {
        assert_eq!(to_str(&json!(1.0)), "1.0");
        assert_eq!(to_str(&json!(0.25)), "0.25");
        assert_eq!(to_str(&json!(1e20)), "1e+20");
        assert_eq!(to_str(&json!(true)), "True");
        assert_eq!(to_str(&json!(null)), "None");
        assert_eq!(to_str(&json!(["a", 1])), "['a', 1]");
        assert_eq!(to_str(&json!({"k": "v"})), "{'k': 'v'}");
    }
}
