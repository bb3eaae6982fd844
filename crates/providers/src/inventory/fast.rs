//! A fast path for the inventory's usual instance: a flat JSON object of plain strings.
//!
//! `serde_json` spends most of a large inventory's load time on generic machinery. Nearly
//! every instance in a real file has the same simple shape: known keys, string values without
//! escapes, and perhaps a `labels` object of the same. This reads exactly that shape, borrowing
//! every string, and gives up (`None`) on anything else: an escape, a number, a repeated or
//! unknown key, a missing required field, invalid UTF-8, a raw control byte. The caller then
//! parses the same bytes with `serde_json`, so every file is read as serde reads it and every
//! error is serde's. The tests check that both agree.

use std::borrow::Cow;

use super::Raw;

/// A byte range in the input.
type Span = (usize, usize);

/// Label pairs as byte ranges.
type LabelSpans = Vec<(Span, Span)>;

/// The instance that is all of `bytes`, when it has the simple shape; `None` to let
/// serde_json decide.
#[cfg(test)]
pub(crate) fn parse(bytes: &[u8]) -> Option<Raw<'_>> {
    let (raw, used) = parse_prefix(bytes)?;
    bytes[used..]
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .then_some(raw)
}

/// The instance at the start of `bytes` and how many bytes it takes, when it has the simple
/// shape; `None` (also when `bytes` ends first) to let serde_json decide.
pub(crate) fn parse_prefix(bytes: &[u8]) -> Option<(Raw<'_>, usize)> {
    let mut p = Cursor { bytes, at: 0 };
    p.ws();
    p.byte(b'{')?;
    // Byte ranges first; the whole object is checked as UTF-8 once at the end, and the
    // ranges (which start and end at quotes, so at character boundaries) sliced from it.
    let mut fields: [Option<Span>; 8] = [None; 8];
    let mut labels: Option<LabelSpans> = None;
    p.ws();
    if p.peek()? == b'}' {
        return None;
    }
    loop {
        p.ws();
        let key = p.string()?;
        p.ws();
        p.byte(b':')?;
        p.ws();
        let slot = match &bytes[key.0..key.1] {
            b"id" => 0,
            b"app" => 1,
            b"account" => 2,
            b"region" => 3,
            b"zone" => 4,
            b"stack" => 5,
            b"detail" => 6,
            b"cluster" => 7,
            b"labels" => {
                if labels.is_some() {
                    return None;
                }
                labels = Some(p.labels()?);
                8
            }
            _ => return None,
        };
        if slot < 8 {
            if fields[slot].is_some() {
                return None;
            }
            fields[slot] = Some(p.string()?);
        }
        p.ws();
        match p.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    let used = p.at;
    let text = std::str::from_utf8(&bytes[..used]).ok()?;
    let at = |range: Span| text.get(range.0..range.1);
    let field = |slot: usize| -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(match fields[slot] {
            Some(range) => at(range)?,
            None => "",
        }))
    };
    let labels = match labels {
        None => Vec::new(),
        Some(pairs) => {
            let mut out = Vec::with_capacity(pairs.len());
            for (k, v) in pairs {
                let (k, v) = (at(k)?, at(v)?);
                if out
                    .iter()
                    .any(|(seen, _): &(Cow<'_, str>, Cow<'_, str>)| seen == k)
                {
                    return None;
                }
                out.push((Cow::Borrowed(k), Cow::Borrowed(v)));
            }
            out
        }
    };
    fields[..4].iter().all(Option::is_some).then_some(())?;
    let raw = Raw {
        id: field(0)?,
        app: field(1)?,
        account: field(2)?,
        region: field(3)?,
        zone: field(4)?,
        stack: field(5)?,
        detail: field(6)?,
        cluster: field(7)?,
        labels,
    };
    Some((raw, used))
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// The byte range of a string without escapes or raw control bytes.
    fn string(&mut self) -> Option<Span> {
        self.byte(b'"')?;
        let start = self.at;
        // Inventory strings are short: a plain loop beats a vectorised search here.
        let rest = &self.bytes[start..];
        let end = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[end] != b'"' {
            return None;
        }
        self.at += end + 1;
        Some((start, start + end))
    }

    /// `{"key": "value", ...}` with plain strings, as byte ranges.
    fn labels(&mut self) -> Option<LabelSpans> {
        self.byte(b'{')?;
        let mut out = Vec::new();
        self.ws();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(out);
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            self.byte(b':')?;
            self.ws();
            let value = self.string()?;
            out.push((key, value));
            self.ws();
            match self.next()? {
                b',' => continue,
                b'}' => return Some(out),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_json reads, in comparable form.
    fn by_serde(text: &str) -> Option<Vec<String>> {
        serde_json::from_str::<Raw<'_>>(text).ok().map(|r| flat(&r))
    }

    fn flat(r: &Raw<'_>) -> Vec<String> {
        let mut v: Vec<String> = [
            &r.id, &r.app, &r.account, &r.region, &r.zone, &r.stack, &r.detail, &r.cluster,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        v.extend(labels);
        v
    }

    #[test]
    fn agrees_with_serde_or_defers_to_it() {
        let cases = [
            r#"{"id":"i-1","app":"web","account":"prod","region":"r"}"#,
            r#" { "id" : "i-1" , "app":"web","account":"prod","region":"r","zone":"a","stack":"s","detail":"d","cluster":"c", "labels" : { "team" : "core" , "env":"prod"} } "#,
            r#"{"id":"i-1","app":"web","account":"prod","region":"r","labels":{}}"#,
            r#"{"id":"é-ü","app":"web","account":"prod","region":"r"}"#,
            // Shapes the fast path leaves to serde_json:
            r#"{"id":"i-\u0031","app":"web","account":"prod","region":"r"}"#,
            r#"{"id":"i-1","app":"web","account":"prod"}"#,
            r#"{"id":"i-1","app":"web","account":"prod","region":"r","acount":"x"}"#,
            r#"{"id":"i-1","id":"i-2","app":"web","account":"prod","region":"r"}"#,
            r#"{"id":1,"app":"web","account":"prod","region":"r"}"#,
            r#"{"id":"i-1","app":"web","account":"prod","region":"r","labels":{"a":"1","a":"2"}}"#,
            r#"{"id":"i-1","app":"web","account":"prod","region":"r","labels":{"a":1}}"#,
            r#"{"id":"i-1","app":"web","account":"prod","region":"r"} x"#,
            r#"{"id":"i-1","app":"web","account":"prod","region":"r",}"#,
            "{\"id\":\"i-\u{1}\",\"app\":\"web\",\"account\":\"prod\",\"region\":\"r\"}",
            r#"{}"#,
            r#"[]"#,
        ];
        for text in cases {
            let fast = parse(text.as_bytes()).map(|r| flat(&r));
            if let Some(fast) = fast {
                assert_eq!(Some(fast), by_serde(text), "{text}");
            }
        }
        assert!(parse(cases[0].as_bytes()).is_some());
        assert!(parse(cases[1].as_bytes()).is_some());
        assert!(parse(cases[4].as_bytes()).is_none(), "escapes go to serde");
        assert!(parse(&[b'{', b'"', 0xff, b'"', b':', b'"', b'"', b'}']).is_none());
    }
}
