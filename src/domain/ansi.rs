//! The one rule that removes ANSI escape sequences from output, for
//! everything that wants the text a terminal would print: log search, live
//! result words, JUnit messages, and the terminal client's plain output.

/// `text` without ANSI escape sequences.
pub fn strip(text: &str) -> String {
    if !text.contains('\u{1b}') {
        return text.to_string();
    }
    let mut out = Vec::with_capacity(text.len());
    strip_into(text.as_bytes(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes `raw` without its escape sequences into `out` (cleared first).
pub fn strip_into(raw: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let put = |piece: &[u8]| {
        out.extend_from_slice(piece);
        Ok::<(), std::convert::Infallible>(())
    };
    if let Err(never) = strip_to(raw, put) {
        match never {}
    }
}

/// Hands `put` the pieces of `raw` between its escape sequences, in order: CSI
/// (`ESC [` … final byte), OSC (`ESC ]` … BEL or `ESC \`), DCS/SOS/PM/APC
/// strings (`ESC P`/`X`/`^`/`_` … `ESC \`), and two- or three-byte escapes. A
/// byte-level pass, much faster than a full terminal parser, and all a search
/// needs: the text a terminal would print.
pub fn strip_to<E>(raw: &[u8], mut put: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
    let mut i = 0;
    while i < raw.len() {
        let Some(esc) = memchr::memchr(0x1b, &raw[i..]) else {
            put(&raw[i..])?;
            return Ok(());
        };
        put(&raw[i..i + esc])?;
        i += esc + 1;
        match raw.get(i) {
            Some(b'[') => {
                i += 1;
                while i < raw.len() && (0x20..=0x3f).contains(&raw[i]) {
                    i += 1;
                }
                if i < raw.len() && (0x40..=0x7e).contains(&raw[i]) {
                    i += 1;
                }
            }
            Some(b']') | Some(b'P') | Some(b'X') | Some(b'^') | Some(b'_') => {
                let osc = raw[i] == b']';
                i += 1;
                while i < raw.len() {
                    if osc && raw[i] == 0x07 {
                        i += 1;
                        break;
                    }
                    if raw[i] == 0x1b && raw.get(i + 1) == Some(&b'\\') {
                        i += 2;
                        break;
                    }
                    i += 1;
                }
            }
            Some(b) if (0x20..=0x2f).contains(b) => {
                while i < raw.len() && (0x20..=0x2f).contains(&raw[i]) {
                    i += 1;
                }
                if i < raw.len() {
                    i += 1;
                }
            }
            Some(_) => i += 1,
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_of_every_kind_are_stripped() {
        let cases = [
            ("\u{1b}[1;31mred\u{1b}[0m", "red"),
            ("\u{1b}]0;title\u{7}text", "text"),
            ("\u{1b}]8;;http://x\u{1b}\\link\u{1b}]8;;\u{1b}\\", "link"),
            ("\u{1b}P+q544e\u{1b}\\after", "after"),
            ("a\u{1b}(Bb\u{1b}=c", "abc"),
            ("tail\u{1b}", "tail"),
            ("\u{1b}[", ""),
            ("plain", "plain"),
        ];
        for (raw, want) in cases {
            assert_eq!(strip(raw), want, "{raw:?}");
        }
    }
}
