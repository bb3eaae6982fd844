//! A fast path for the inventory's usual instance: a flat JSON object of plain strings.
//!
//! `serde_json` spends most of a large inventory's load time on generic machinery. Nearly
//! every instance in a real file has the same simple shape: known keys, string values without
//! escapes, and perhaps a `labels` object of the same. This reads exactly that shape, borrowing
//! every string, and gives up (`None`) on anything else: an escape, a number, a repeated or
//! unknown key, a missing required field, invalid UTF-8, a raw control byte. It returns byte
//! spans rather than strings, so reading an instance allocates nothing. The caller then
//! parses the same bytes with `serde_json`, so every file is read as serde reads it and every
//! error is serde's. The tests check that both agree.

#[cfg(test)]
use super::Raw;
#[cfg(test)]
use std::borrow::Cow;

/// A byte range in the input.
pub(crate) type Span = (usize, usize);

/// Label pairs as byte ranges.
type LabelSpans = Vec<(Span, Span)>;

/// The instance that is all of `bytes`, when it has the simple shape; `None` to let
/// serde_json decide.
#[cfg(test)]
pub(crate) fn parse(bytes: &[u8]) -> Option<Raw<'_>> {
    let mut labels = Vec::new();
    let Parsed {
        text, fields, used, ..
    } = parse_prefix(bytes, &mut labels)?;
    let trailing_ws = bytes[used..]
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    let at = |(a, b): Span| Cow::Borrowed(&text[a..b]);
    let [id, app, account, region, zone, stack, detail, cluster] = fields;
    trailing_ws.then(|| Raw {
        id: at(id),
        app: at(app),
        account: at(account),
        region: at(region),
        zone: at(zone),
        stack: at(stack),
        detail: at(detail),
        cluster: at(cluster),
        labels: labels.iter().map(|(k, v)| (at(*k), at(*v))).collect(),
    })
}

/// An instance read by the fast path.
pub(crate) struct Parsed<'a> {
    /// The object's text.
    pub(crate) text: &'a str,
    /// The spans of id, app, account, region, zone, stack, detail and cluster in `text`
    /// (empty when absent).
    pub(crate) fields: [Span; 8],
    /// How many bytes of the input it takes.
    pub(crate) used: usize,
    /// How many line breaks those bytes hold.
    pub(crate) lines: usize,
}

/// The instance at the start of `bytes`, when it has the simple shape; its labels' spans are
/// appended to `labels`. `None` (also when `bytes` ends first) to let serde_json decide.
pub(crate) fn parse_prefix<'a>(bytes: &'a [u8], labels: &mut LabelSpans) -> Option<Parsed<'a>> {
    let mut p = Cursor {
        bytes,
        at: 0,
        lines: 0,
    };
    p.ws();
    p.byte(b'{')?;
    // Byte ranges first; the whole object is checked as UTF-8 once at the end, and the
    // ranges (which start and end at quotes, so at character boundaries) sliced from it.
    let mut fields: [Option<Span>; 8] = [None; 8];
    let mut seen_labels = false;
    p.ws();
    if p.peek()? == b'}' {
        return None;
    }
    loop {
        let key = p.key()?;
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
                if seen_labels {
                    return None;
                }
                seen_labels = true;
                p.labels(labels)?;
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
    fields[..4].iter().all(Option::is_some).then_some(())?;
    Some(Parsed {
        text,
        fields: fields.map(|f| f.unwrap_or((0, 0))),
        used,
        lines: p.lines,
    })
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Line breaks passed (only whitespace can hold one: strings with raw ones are refused).
    lines: usize,
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
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r') => {}
                Some(b'\n') => self.lines += 1,
                _ => return,
            }
            self.at += 1;
        }
    }

    /// An object key and its colon, with the whitespace around them; the key's range.
    fn key(&mut self) -> Option<Span> {
        self.ws();
        let key = self.string()?;
        self.ws();
        self.byte(b':')?;
        self.ws();
        Some(key)
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

    /// `{"key": "value", ...}` with plain strings, as byte ranges appended to `out`. A key
    /// given twice is kept twice, as serde_json gives it (the last value wins later).
    fn labels(&mut self, out: &mut LabelSpans) -> Option<()> {
        self.byte(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let key = self.key()?;
            let value = self.string()?;
            out.push((key, value));
            self.ws();
            match self.next()? {
                b',' => continue,
                b'}' => return Some(()),
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
