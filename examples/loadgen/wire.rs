//! Bytes on the wire: framing received lines and the token each load message carries.
//!
//! The receiving side must never be the bottleneck, so [`LineReader`] scans whole reads with
//! `memchr` and lends out slices of its own buffer (no allocation per line), and [`TokenFinder`]
//! finds the token with a single-byte `memchr` and parses its numbers by hand. The token
//! is `LG <sender> <seq> <nanos> <tag>` in fixed-width decimal, followed by padding: whatever a server wraps around it (a
//! colour, an emoji and a name; an IRC prefix; a RESP bulk string), it survives intact.

use std::io;
use std::io::Write as _;

use crate::receipt::Source;

/// What every token starts with; servers never produce it on their own.
const MAGIC: &[u8] = b"LG ";

/// A line longer than this is skipped whole (an online list at 19,000 users is ~400 KB).
pub const MAX_LINE: usize = 4 * 1024 * 1024;

/// Lines read off one connection, framed by `\n` with an optional `\r` before it.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// First byte not yet handed out.
    start: usize,
    /// End of the bytes read so far.
    end: usize,
    /// The size the buffer returns to once a long line has gone.
    initial: usize,
    /// True while skipping the rest of a line longer than [`MAX_LINE`].
    discarding: bool,
}

impl<R: Source> LineReader<R> {
    pub fn new(inner: R, capacity: usize) -> Self {
        let capacity = capacity.max(64);
        LineReader {
            inner,
            buf: vec![0; capacity],
            start: 0,
            end: 0,
            initial: capacity,
            discarding: false,
        }
    }

    /// Reads once from the socket: the byte count (0 at the end of the stream) and the kernel's
    /// receive time if it stamped the data. Cancel-safe: dropping the future loses no bytes.
    pub async fn fill(&mut self) -> io::Result<(usize, Option<u64>)> {
        self.make_room();
        let (n, stamp) = self.inner.read_stamped(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok((n, stamp))
    }

    /// The next complete line in what was read, without its line ending.
    pub fn next_line(&mut self) -> Option<&[u8]> {
        loop {
            let pending = &self.buf[self.start..self.end];
            let newline = memchr::memchr(b'\n', pending)?;
            let line_start = self.start;
            self.start += newline + 1;
            if std::mem::take(&mut self.discarding) {
                continue;
            }
            let line = &self.buf[line_start..line_start + newline];
            return Some(line.strip_suffix(b"\r").unwrap_or(line));
        }
    }

    /// Hands back the buffer to its first size once nothing is pending, so a connection that
    /// received one huge line (an online list) does not keep its memory.
    pub fn shrink_when_idle(&mut self) {
        if self.start == self.end && self.buf.len() > self.initial {
            self.buf = vec![0; self.initial];
            self.start = 0;
            self.end = 0;
        }
    }

    /// Moves a partial line to the front, and grows the buffer when the line fills it.
    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end < self.buf.len() {
            return;
        }
        if self.buf.len() >= MAX_LINE {
            // One line filled the largest buffer: drop it and skip to its end.
            self.start = 0;
            self.end = 0;
            self.discarding = true;
        } else {
            let grown = (self.buf.len() * 2).min(MAX_LINE);
            self.buf.resize(grown, 0);
        }
    }
}

/// One message's identity and send time, as found in a received line. Written with fixed widths
/// (sender < 100,000, seq < 10^10, nanos < 10^15, i.e. 11 days, tag < 10^9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub sender: u32,
    pub seq: u64,
    /// Send time in nanoseconds on the process clock (`metrics::now_nanos`).
    pub nanos: u64,
    /// Which run sent it; lines from earlier runs (replayed history) carry another tag.
    pub tag: u32,
}

impl Token {
    /// Appends the token, padded with `x` to `size` bytes when it is shorter.
    pub fn write_padded(&self, out: &mut Vec<u8>, size: usize) {
        let begin = out.len();
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            "LG {:05} {:010} {:015} {:09}",
            self.sender, self.seq, self.nanos, self.tag
        );
        let written = out.len() - begin;
        if written < size {
            out.push(b' ');
            out.resize(begin + size, b'x');
        }
    }
}

/// Finds and parses the token in a received line.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokenFinder;

impl TokenFinder {
    pub fn find(&self, line: &[u8]) -> Option<Token> {
        // Servers decorate with lowercase names, ESC sequences, emoji and IRC/RESP framing, so an
        // upper-case 'L' is rare: a single-byte memchr beats a general substring search here.
        let at = memchr::memchr_iter(MAGIC[0], line).find(|&i| line[i..].starts_with(MAGIC))?;
        let token = line.get(at..at + TOKEN_LEN)?;
        // Fixed-width fields: four independent digit chains the CPU runs side by side, and no
        // branch that depends on a number's length.
        let (sender, a) = digits(&token[3..8]);
        let (seq, b) = digits(&token[9..19]);
        let (nanos, c) = digits(&token[20..35]);
        let (tag, d) = digits(&token[36..45]);
        let spaced = token[8] == b' ' && token[19] == b' ' && token[35] == b' ';
        (a & b & c & d & spaced).then_some(Token {
            sender: sender as u32,
            seq,
            nanos,
            tag: tag as u32,
        })
    }
}

/// Length of a token without padding: `LG sssss qqqqqqqqqq nnnnnnnnnnnnnnn ttttttttt`.
pub const TOKEN_LEN: usize = 45;
/// Largest values the fixed-width fields hold.
pub const MAX_SENDERS: u64 = 100_000;
pub const MAX_SEQ: u64 = 10_000_000_000;

/// The value of a run of at most 15 decimal digits, and whether they all were digits.
fn digits(bytes: &[u8]) -> (u64, bool) {
    let mut value = 0u64;
    let mut ok = true;
    for &b in bytes {
        let digit = b.wrapping_sub(b'0');
        ok &= digit < 10;
        value = value * 10 + u64::from(digit);
    }
    (value, ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_through_a_decorated_line() {
        let token = Token { sender: 7, seq: 42, nanos: 123_456_789, tag: 99 };
        let mut text = Vec::new();
        token.write_padded(&mut text, 64);
        assert_eq!(text.len(), 64);
        assert!(text.starts_with(b"LG 00007 0000000042 000000123456789 000000099 xx"));
        let mut line = b"\x1b[38;5;208m\xf0\x9f\xa6\x8a lg1x3: ".to_vec();
        line.extend_from_slice(&text);
        line.extend_from_slice(b"\x1b[0m");
        assert_eq!(TokenFinder.find(&line), Some(token));
        assert_eq!(TokenFinder.find(b"*** lg1x3 joined"), None);
    }

    #[tokio::test]
    async fn lines_are_framed_across_reads_and_long_lines_grow_the_buffer() {
        let mut data = b"a\r\nbb\n".to_vec();
        data.extend(std::iter::repeat_n(b'z', 1000));
        data.extend_from_slice(b"\r\nend\n");
        let mut reader = LineReader::new(&data[..], 64);
        let mut lines = Vec::new();
        while reader.fill().await.is_ok_and(|(n, _)| n > 0) {
            while let Some(line) = reader.next_line() {
                lines.push(line.len());
            }
        }
        assert_eq!(lines, vec![1, 2, 1000, 3]);
    }
}
