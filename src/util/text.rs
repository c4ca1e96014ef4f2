//! Text a peer wrote into its certificate, made safe to write into a log event: every control
//! or non-printable character escaped, each name bounded in length, lists bounded in count.
//!
//! Only the failure paths use it (a handshake that is refused), and the work happens when a
//! subscriber formats the event: an accepted handshake never pays for it.

use std::fmt::{self, Write as _};

/// The most characters one name (a subject, an issuer, one SAN) shows once escaped; the rest
/// is cut at a character boundary, never inside an escape, and marked `…(+N chars)`.
pub(crate) const MAX_CHARS: usize = 256;

/// The most names a list shows; the rest are counted as `,… and N more`.
pub(crate) const MAX_NAMES: usize = 8;

/// `T`'s text, escaped and bounded when displayed.
///
/// Output holds no control character, no non-printable character (Unicode line and paragraph
/// separators, bidirectional overrides and other format characters included) and no lone
/// backslash: `\n`, `\r`, `\t`, `\0`, `\\` and `\u{..}` stand for them, so an escape in the
/// output is always ours. At most [`MAX_CHARS`] characters, plus the cut marker.
pub(crate) struct Escaped<T>(pub(crate) T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bounded = Bounded {
            out: f,
            written: 0,
            cut: 0,
        };
        write!(bounded, "{}", self.0)?;
        match bounded.cut {
            0 => Ok(()),
            n => write!(bounded.out, "…(+{n} chars)"),
        }
    }
}

/// Names, each [`Escaped`], at most [`MAX_NAMES`] of them, joined by `,`.
pub(crate) struct Names<I>(pub(crate) I);

impl<I> fmt::Display for Names<I>
where
    I: Iterator + Clone,
    I::Item: fmt::Display,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names = self.0.clone();
        for (i, name) in names.by_ref().take(MAX_NAMES).enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            write!(f, "{}", Escaped(name))?;
        }
        match names.count() {
            0 => Ok(()),
            more => write!(f, ",… and {more} more"),
        }
    }
}

/// Escapes what is written through it into `out`, up to [`MAX_CHARS`] characters of output;
/// counts the input characters it drops after that in `cut`.
struct Bounded<'a, 'b> {
    out: &'a mut fmt::Formatter<'b>,
    written: usize,
    cut: usize,
}

impl fmt::Write for Bounded<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.cut > 0 {
                self.cut += 1;
                continue;
            }
            let escape = c.escape_debug();
            // Quotes are printable and kept as they are; a backslash is always escaped, so
            // that a peer cannot write something that reads as one of our escapes.
            let plain = matches!(c, '"' | '\'') || (escape.len() == 1 && c != '\\');
            let len = if plain { 1 } else { escape.len() };
            if self.written + len > MAX_CHARS {
                self.cut = 1;
                continue;
            }
            self.written += len;
            if plain {
                self.out.write_char(c)?;
            } else {
                for e in escape {
                    self.out.write_char(e)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_invisible_characters_are_escaped() {
        let shown = Escaped("a\nb\r\tc\0\u{1b}[31m\u{202e}x\u{2028}y\\n 'q\" é").to_string();
        assert_eq!(
            shown,
            "a\\nb\\r\\tc\\0\\u{1b}[31m\\u{202e}x\\u{2028}y\\\\n 'q\" é"
        );
        assert!(!shown.chars().any(|c| c.is_control()));
    }

    #[test]
    fn a_long_name_is_cut_at_a_bound_and_never_inside_an_escape() {
        let shown = Escaped("a".repeat(70_000)).to_string();
        assert_eq!(
            shown,
            format!("{}…(+{} chars)", "a".repeat(256), 70_000 - 256)
        );
        // 255 characters, then an escape of two that would end past the bound.
        let shown = Escaped(format!("{}\n{}", "b".repeat(255), "c".repeat(9))).to_string();
        assert_eq!(shown, format!("{}…(+10 chars)", "b".repeat(255)));
        let shown = Escaped("\u{7}".repeat(1000)).to_string();
        assert!(shown.starts_with("\\u{7}\\u{7}"), "{shown}");
        assert!(shown.chars().count() <= MAX_CHARS + "…(+1000 chars)".len());
    }

    #[test]
    fn a_long_list_shows_its_first_names_and_counts_the_rest() {
        let names: Vec<String> = (0..5000).map(|i| format!("n{i}")).collect();
        let shown = Names(names.iter()).to_string();
        assert_eq!(shown, "n0,n1,n2,n3,n4,n5,n6,n7,… and 4992 more");
        assert_eq!(Names(["x\ny"].iter()).to_string(), "x\\ny");
        assert_eq!(Names(std::iter::empty::<&str>()).to_string(), "");
    }
}
