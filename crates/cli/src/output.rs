//! Human output: aligned tables, local times, text made safe for a terminal, and the
//! printing macros every command uses.
//!
//! Commands print with [`outln!`] and [`out!`], which return the write error instead of
//! panicking as `println!` does: a closed pipe (`simian schedule --days 3660 | head -1`) ends
//! the command quietly, as Unix tools end (see `main`).

/// `println!` to standard output, returning the `io::Result` instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!` to standard output, returning the `io::Result` instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

use std::borrow::Cow;

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// `text` with every control character escaped (`\u{1b}`, `\n`, ...), so that a value from
/// outside (an instance id, an app, a label read from another process's environment or an
/// inventory) can never move the cursor, recolour or retitle the terminal it is printed to.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Renders `rows` under `headers` as left-aligned columns separated by two spaces; every cell
/// is made [`safe`] first.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| safe(cell).into_owned()).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// `2026-03-02 10:17 PST`
pub fn local(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// RFC 3339 with the zone's offset: `2026-03-02T10:17:00-08:00`.
pub fn rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// `-` for an empty cell.
pub fn dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(
            &["A", "LONG"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["q".into(), "22".into()],
            ],
        );
        assert_eq!(t, "A    LONG\nxyz  1\nq    22\n");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(safe("web-1"), "web-1");
        assert_eq!(safe("a\u{1b}[31mred\u{7}"), "a\\u{1b}[31mred\\u{7}");
        assert_eq!(safe("two\nlines\r"), "two\\nlines\\r");
        assert_eq!(safe("\u{9b}2J"), "\\u{9b}2J", "C1 controls too");
        let t = table(&["ID"], &[vec!["\u{1b}]0;pwned\u{7}".into()]]);
        assert!(!t.contains('\u{1b}') && !t.contains('\u{7}'), "{t:?}");
    }

    #[test]
    fn times_carry_the_offset() {
        let tz = TimeZone::get("America/Los_Angeles").unwrap();
        let t: Timestamp = "2026-03-02T18:17:00Z".parse().unwrap();
        assert_eq!(rfc3339(t, &tz), "2026-03-02T10:17:00-08:00");
        assert_eq!(local(t, &tz), "2026-03-02 10:17 PST");
    }
}
