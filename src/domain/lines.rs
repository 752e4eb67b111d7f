//! How output bytes become numbered lines — the one rule every line number
//! (`from`, `total`, `#L`) counts by: a line ends at `\n`; a `\r` right before
//! it is dropped; a lone `\r` stays; a line over 64 KiB is split at a character
//! boundary; bytes that are not UTF-8 are replaced, never dropped.

/// The longest stored line, in bytes of raw output.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Splits a byte stream into lines. Feed it chunks as they are read.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// A splitter with nothing pending.
    pub fn new() -> LineSplitter {
        LineSplitter::default()
    }

    /// Adds `chunk` and appends every line it completes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<String>) {
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.pending.extend_from_slice(&rest[..pos]);
            self.split_long(out);
            let mut line = std::mem::take(&mut self.pending);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            out.push(lossy(line));
            rest = &rest[pos + 1..];
        }
        self.pending.extend_from_slice(rest);
        self.split_long(out);
    }

    /// The unfinished line so far, if any.
    pub fn partial(&self) -> Option<String> {
        if self.pending.is_empty() {
            None
        } else {
            Some(String::from_utf8_lossy(&self.pending).into_owned())
        }
    }

    /// Ends the stream: an unfinished last line becomes a line.
    pub fn finish(&mut self, out: &mut Vec<String>) {
        if !self.pending.is_empty() {
            out.push(lossy(std::mem::take(&mut self.pending)));
        }
    }

    fn split_long(&mut self, out: &mut Vec<String>) {
        while self.pending.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            // Step back over UTF-8 continuation bytes (at most 3).
            while cut > MAX_LINE_BYTES - 3 && (self.pending[cut] & 0b1100_0000) == 0b1000_0000 {
                cut -= 1;
            }
            let tail = self.pending.split_off(cut);
            out.push(lossy(std::mem::replace(&mut self.pending, tail)));
        }
    }
}

fn lossy(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Splits a whole text (the original worker's `logs` field) by the same rule.
/// Returns the complete lines and the unfinished rest.
pub fn split_text(text: &str) -> (Vec<String>, Option<String>) {
    let mut s = LineSplitter::new();
    let mut out = Vec::new();
    s.push(text.as_bytes(), &mut out);
    (out, s.partial())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<String> {
        let mut s = LineSplitter::new();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn splits_on_newline_across_chunks() {
        assert_eq!(lines(&[b"a\nb", b"c\n", b"d"]), ["a", "bc", "d"]);
        assert_eq!(lines(&[b"\n\n"]), ["", ""]);
    }

    #[test]
    fn crlf_loses_cr_but_lone_cr_stays() {
        assert_eq!(lines(&[b"a\r\nb\rc\n"]), ["a", "b\rc"]);
        assert_eq!(lines(&[b"a\r", b"\n"]), ["a"]);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        assert_eq!(lines(&[b"x\xffy\n"]), ["x\u{fffd}y"]);
    }

    #[test]
    fn long_lines_split_at_char_boundary() {
        let mut raw = vec![b'a'; MAX_LINE_BYTES - 1];
        raw.extend_from_slice("é".as_bytes()); // 2 bytes straddling the limit
        raw.extend_from_slice(b"zz\n");
        let out = lines(&[&raw]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), MAX_LINE_BYTES - 1);
        assert_eq!(out[1], "ézz");
    }

    #[test]
    fn partial_shows_unfinished_line() {
        let mut s = LineSplitter::new();
        let mut out = Vec::new();
        s.push(b"done\ntest_x.py::test_slow ", &mut out);
        assert_eq!(out, ["done"]);
        assert_eq!(s.partial().as_deref(), Some("test_x.py::test_slow "));
    }

    #[test]
    fn split_text_keeps_rest_apart() {
        assert_eq!(split_text("a\nb"), (vec!["a".to_string()], Some("b".to_string())));
    }
}
