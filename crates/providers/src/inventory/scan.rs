//! Walks a JSON inventory (`{"instances": [...]}`) one instance at a time.
//!
//! Reading a million-instance file whole into a string, then into owned structs, took eight
//! times the file's size in memory. This scanner reads the file in blocks, finds where each
//! element of the `instances` array begins and ends (tracking only strings and nesting; JSON
//! itself is left to `serde_json`), and hands each element's bytes, with the line it starts
//! on, to a callback. Memory is one block plus the longest element, whatever the file's size,
//! and every error can name its line.

use std::io::Read;

/// A structural problem with the file, at a 1-based line.
#[derive(Debug)]
pub struct ScanError {
    /// Where.
    pub line: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Why a scan stopped: the file, or the callback.
#[derive(Debug)]
pub enum Stop<E> {
    /// The file is not the expected shape.
    Scan(ScanError),
    /// The file could not be read.
    Read(std::io::Error),
    /// The callback refused an element.
    Element(E),
}

const BLOCK: usize = 1 << 20;

const SHAPE: &str = "an inventory is a JSON object with an \"instances\" array: {\"instances\": [{\"id\": ..., \"app\": ..., \"account\": ..., \"region\": ...}]}";

/// What receives the elements of the `instances` array (positions are 1-based).
pub trait Sink {
    /// Why an element is refused.
    type Error;

    /// Reads the element at the start of `rest` if it can do so cheaply, returning how many
    /// bytes it took and how many line breaks they hold; `None` leaves it to
    /// [`element`](Sink::element). `rest` may end before the element does (at the end of a
    /// block): then the answer must be `None`.
    fn quick(
        &mut self,
        rest: &[u8],
        line: usize,
        position: usize,
    ) -> Option<Result<(usize, usize), Self::Error>>;

    /// Takes the element's complete bytes.
    fn element(&mut self, bytes: &[u8], line: usize, position: usize) -> Result<(), Self::Error>;
}

/// A sink that only takes complete elements.
#[cfg(test)]
struct Whole<F>(F);

#[cfg(test)]
impl<E, F: FnMut(&[u8], usize, usize) -> Result<(), E>> Sink for Whole<F> {
    type Error = E;
    fn quick(&mut self, _: &[u8], _: usize, _: usize) -> Option<Result<(usize, usize), E>> {
        None
    }
    fn element(&mut self, bytes: &[u8], line: usize, position: usize) -> Result<(), E> {
        (self.0)(bytes, line, position)
    }
}

/// Scans `reader`, calling `element(bytes, line, position)` for each element of the
/// `instances` array (positions are 1-based).
#[cfg(test)]
pub fn scan<R: Read, E>(
    reader: R,
    element: impl FnMut(&[u8], usize, usize) -> Result<(), E>,
) -> Result<(), Stop<E>> {
    scan_into(reader, &mut Whole(element))
}

/// Scans `reader` into `sink`.
pub fn scan_into<R: Read, S: Sink>(reader: R, sink: &mut S) -> Result<(), Stop<S::Error>> {
    let mut s = Scanner {
        reader,
        buf: Vec::with_capacity(BLOCK),
        pos: 0,
        line: 1,
        eof: false,
    };
    s.skip_ws()?;
    match s.peek()? {
        Some(b'{') => s.pos += 1,
        Some(b'[') => {
            return Err(s.error(format!("the file is a bare array; wrap it: {SHAPE}")));
        }
        Some(_) => return Err(s.error(format!("not an inventory: {SHAPE}"))),
        None => return Err(s.error(format!("the file is empty: {SHAPE}"))),
    }
    let mut seen_instances = false;
    s.skip_ws()?;
    if s.peek()? == Some(b'}') {
        return Err(s.error(format!("no \"instances\" array: {SHAPE}")));
    }
    loop {
        s.skip_ws()?;
        let key_line = s.line;
        let key = s.key()?;
        if key != "instances" {
            return Err(Stop::Scan(ScanError {
                line: key_line,
                message: format!("unknown field {key:?}: the only field is \"instances\""),
            }));
        }
        if seen_instances {
            return Err(Stop::Scan(ScanError {
                line: key_line,
                message: "\"instances\" is given twice: keep one array".into(),
            }));
        }
        seen_instances = true;
        s.skip_ws()?;
        s.expect(b':', "':' after \"instances\"")?;
        s.skip_ws()?;
        if s.peek()? != Some(b'[') {
            return Err(s.error(format!("\"instances\" must be an array: {SHAPE}")));
        }
        s.pos += 1;
        s.elements(sink)?;
        s.skip_ws()?;
        match s.peek()? {
            Some(b',') => s.pos += 1,
            Some(b'}') => {
                s.pos += 1;
                break;
            }
            _ => return Err(s.error("expected ',' or '}' after the instances array".into())),
        }
    }
    s.skip_ws()?;
    if s.peek()?.is_some() {
        return Err(s.error("unexpected text after the inventory's closing '}'".into()));
    }
    Ok(())
}

struct Scanner<R> {
    reader: R,
    buf: Vec<u8>,
    pos: usize,
    line: usize,
    eof: bool,
}

impl<R: Read> Scanner<R> {
    fn error<E>(&self, message: String) -> Stop<E> {
        Stop::Scan(ScanError {
            line: self.line,
            message,
        })
    }

    /// Reads another block, keeping the bytes from `keep` on. False at the end of the file.
    fn fill<E>(&mut self, keep: usize) -> Result<bool, Stop<E>> {
        if self.eof {
            return Ok(false);
        }
        if keep > 0 {
            self.buf.drain(..keep);
            self.pos -= keep;
        }
        let old = self.buf.len();
        self.buf.resize(old + BLOCK, 0);
        let n = loop {
            match self.reader.read(&mut self.buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Stop::Read(e)),
            }
        };
        self.buf.truncate(old + n);
        if n == 0 {
            self.eof = true;
        }
        Ok(n > 0)
    }

    fn peek<E>(&mut self) -> Result<Option<u8>, Stop<E>> {
        while self.pos >= self.buf.len() {
            if !self.fill(self.pos)? {
                return Ok(None);
            }
        }
        Ok(Some(self.buf[self.pos]))
    }

    fn skip_ws<E>(&mut self) -> Result<(), Stop<E>> {
        while let Some(b) = self.peek()? {
            match b {
                b'\n' => self.line += 1,
                b' ' | b'\t' | b'\r' => {}
                _ => return Ok(()),
            }
            self.pos += 1;
        }
        Ok(())
    }

    fn expect<E>(&mut self, byte: u8, what: &str) -> Result<(), Stop<E>> {
        if self.peek()? == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(format!("expected {what}")))
        }
    }

    /// A top-level key: a JSON string.
    fn key<E>(&mut self) -> Result<String, Stop<E>> {
        if self.peek()? != Some(b'"') {
            return Err(self.error(format!("expected a field name: {SHAPE}")));
        }
        let (start, end) = self.value()?;
        serde_json::from_slice(&self.buf[start..end])
            .map_err(|e| self.error(format!("bad field name: {e}")))
    }

    /// The array's elements, up to and including its closing ']'.
    fn elements<S: Sink>(&mut self, sink: &mut S) -> Result<(), Stop<S::Error>> {
        let mut position = 0;
        self.skip_ws()?;
        if self.peek()? == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws()?;
            let line = self.line;
            position += 1;
            let rest = &self.buf[self.pos..];
            match sink.quick(rest, line, position) {
                Some(Ok((used, lines))) => {
                    self.line += lines;
                    self.pos += used;
                }
                Some(Err(e)) => return Err(Stop::Element(e)),
                None => {
                    let (start, end) = self.value()?;
                    sink.element(&self.buf[start..end], line, position)
                        .map_err(Stop::Element)?;
                }
            }
            self.skip_ws()?;
            match self.peek()? {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(_) => {
                    return Err(
                        self.error(format!("expected ',' or ']' after instance #{position}"))
                    );
                }
                None => {
                    return Err(self.error(
                        "the file ends inside the instances array: is it truncated?".into(),
                    ));
                }
            }
        }
    }

    /// The extent of the JSON value that starts at `pos` (strings and nesting tracked,
    /// nothing else checked); moves past it and counts its lines.
    fn value<E>(&mut self) -> Result<(usize, usize), Stop<E>> {
        let mut start = self.pos;
        let mut i = self.pos;
        let mut depth = 0usize;
        let mut in_string = false;
        loop {
            if i >= self.buf.len() {
                let keep = start;
                if !self.fill(keep)? {
                    return Err(self.error("the file ends inside a value: is it truncated?".into()));
                }
                i -= keep;
                start -= keep;
                continue;
            }
            if in_string {
                match memchr::memchr2(b'"', b'\\', &self.buf[i..]) {
                    None => i = self.buf.len(),
                    Some(k) => {
                        i += k;
                        if self.buf[i] == b'\\' {
                            // Skip the escaped byte, reading on if it is in the next block.
                            if i + 1 >= self.buf.len() {
                                let keep = start;
                                if !self.fill(keep)? {
                                    return Err(self.error(
                                        "the file ends inside a string: is it truncated?".into(),
                                    ));
                                }
                                i -= keep;
                                start -= keep;
                            }
                            i += 2;
                        } else {
                            i += 1;
                            in_string = false;
                            if depth == 0 {
                                break;
                            }
                        }
                    }
                }
                continue;
            }
            match self.buf[i] {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    if depth == 0 {
                        break;
                    }
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                b',' | b' ' | b'\t' | b'\r' | b'\n' if depth == 0 => break,
                _ => {}
            }
            i += 1;
        }
        self.line += memchr::memchr_iter(b'\n', &self.buf[start..i]).count();
        self.pos = i;
        Ok((start, i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(text: &str) -> Result<Vec<(String, usize, usize)>, String> {
        let mut out = Vec::new();
        scan(text.as_bytes(), |bytes, line, n| -> Result<(), ()> {
            out.push((String::from_utf8_lossy(bytes).into_owned(), line, n));
            Ok(())
        })
        .map_err(|e| match e {
            Stop::Scan(s) => format!("{}: {}", s.line, s.message),
            Stop::Read(e) => e.to_string(),
            Stop::Element(()) => "element".into(),
        })?;
        Ok(out)
    }

    #[test]
    fn finds_each_element_and_its_line() {
        let text = "{\n \"instances\": [\n  {\"id\": \"a}\\\"]\", \"x\": [1, {\"y\": 2}]},\n\n  {\"id\": \"b\"}\n ]\n}\n";
        let found = elements(text).unwrap();
        assert_eq!(
            found,
            vec![
                (r#"{"id": "a}\"]", "x": [1, {"y": 2}]}"#.to_string(), 3, 1),
                (r#"{"id": "b"}"#.to_string(), 5, 2),
            ]
        );
        assert_eq!(elements(r#"{"instances": []}"#).unwrap(), vec![]);
        assert_eq!(elements(r#"{"instances": [3, "s"]}"#).unwrap().len(), 2);
    }

    #[test]
    fn elements_larger_than_a_block_and_split_escapes() {
        let long = "x".repeat(BLOCK * 2 + 17);
        for prefix in 0..3 {
            // Shift the text so that an escape falls on a block boundary.
            let pad = " ".repeat(BLOCK - 20 + prefix);
            let text =
                format!("{{\"instances\": [{pad}{{\"id\": \"{long}\\\"q\"}}, {{\"id\": \"b\"}}]}}");
            let found = elements(&text).unwrap();
            assert_eq!(found.len(), 2);
            assert!(found[0].0.ends_with("\\\"q\"}"));
            assert_eq!(found[1].0, r#"{"id": "b"}"#);
        }
    }

    #[test]
    fn shape_errors_say_what_the_file_must_be() {
        for (text, line, says) in [
            ("[{\"id\": 1}]", 1, "bare array"),
            ("", 1, "empty"),
            ("{}", 1, "no \"instances\""),
            ("\n{\"hosts\": []}", 2, "unknown field \"hosts\""),
            ("{\"instances\": {}}", 1, "must be an array"),
            ("{\"instances\": [{\"id\": 1}", 1, "truncated"),
            (
                "{\"instances\": [{\"id\": 1} {\"id\": 2}]}",
                1,
                "expected ','",
            ),
            ("{\"instances\": []} x", 1, "after the inventory"),
            ("{\"instances\": [], \"instances\": []}", 1, "twice"),
        ] {
            let err = elements(text).unwrap_err();
            assert!(
                err.starts_with(&format!("{line}: ")) && err.contains(says),
                "{text:?}: {err}"
            );
        }
    }
}
