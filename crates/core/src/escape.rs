//! Escaping for the text Simian puts into web pages and URLs.
//!
//! The dashboard and the experiment report write HTML by hand, and the control API, the
//! experiment runner and the stop conditions build query strings: one escaping each, here,
//! so that a fix to one is a fix to all.

/// Text escaped for HTML content and attribute values.
///
/// ```
/// assert_eq!(simian_core::escape::html("<a href='x'>&</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;");
/// ```
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One query-string (or form) component, percent-encoded: everything but the unreserved
/// characters of RFC 3986.
///
/// ```
/// assert_eq!(simian_core::escape::query("a b/c:d"), "a%20b%2Fc%3Ad");
/// ```
pub fn query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
    out
}

/// One query-string (or form) component, decoded: `+` is a space; a `%` not followed by two
/// hex digits stays as it is; bytes that are not UTF-8 become U+FFFD.
///
/// ```
/// assert_eq!(simian_core::escape::decode_query("a+b%20c%2"), "a b c%2");
/// ```
pub fn decode_query(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'+' {
            out.push(b' ');
            i += 1;
            continue;
        }
        if b == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && hex.iter().all(u8::is_ascii_hexdigit)
            && let Some(v) = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_encoded_decodes_back() {
        for s in ["", "plain", "a b&c=d/e?f#g", "ünïcödé ☃", "100%", "+ +"] {
            assert_eq!(decode_query(&query(s)), s);
        }
        assert_eq!(decode_query("%zz%"), "%zz%");
        assert_eq!(query("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn html_leaves_nothing_that_opens_markup() {
        let escaped = html("<script>alert('x') & \"y\"</script>");
        assert!(!escaped.contains(['<', '>', '"', '\'']));
        assert_eq!(html("plain text"), "plain text");
    }
}
