//! Line framing for the wire: turns the bytes a client sends into [`Frame`]s.
//!
//! `tokio_util::codec::LinesCodec` cannot do this job on its own: it rejects
//! invalid UTF-8, keeps telnet negotiation bytes, and its "line too long"
//! is an `Err` after which `FramedRead` ends the stream (tokio issue 3976).
//! [`ChatCodec`] is a small decoder of our own with the same `Decoder` shape:
//! it strips telnet IAC sequences and carriage returns, decodes UTF-8
//! lossily, and reports an overlong line as an ordinary [`Frame::TooLong`]
//! so the connection lives on. It consumes every byte it is given, so the
//! only memory a partial line can hold is its own buffer, capped at the limit.

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

/// Telnet "interpret as command" byte.
const IAC: u8 = 0xFF;
/// Telnet subnegotiation begin and end.
const SB: u8 = 0xFA;
const SE: u8 = 0xF0;
/// Telnet option verbs that carry one option byte.
const WILL: u8 = 0xFB;
const DONT: u8 = 0xFE;

/// Default maximum length of a line, in bytes, excluding the line ending.
pub const DEFAULT_MAX_LINE: usize = 4096;

/// A buffer that grew past this for one long line is released afterwards, so
/// an idle connection keeps a small footprint.
const RETAINED_LINE_CAPACITY: usize = 256;

/// One unit of client input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line, without its line ending, decoded lossily as UTF-8.
    Line(String),
    /// A line longer than the limit was discarded; `bytes` counts what was dropped
    /// (at least the limit, more when the line went on).
    TooLong { bytes: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Telnet {
    Data,
    /// After IAC.
    Command,
    /// After IAC WILL/WONT/DO/DONT: the next byte is the option.
    Option,
    /// Inside IAC SB ... IAC SE.
    Subnegotiation,
    /// After IAC inside a subnegotiation.
    SubnegotiationCommand,
}

/// Decoder of client lines: `\n` or `\r\n` endings, telnet IAC removed,
/// lossy UTF-8, overlong lines discarded and reported.
#[derive(Debug)]
pub struct ChatCodec {
    max_line: usize,
    line: Vec<u8>,
    telnet: Telnet,
    /// Bytes thrown away from the current overlong line; zero when not discarding.
    discarded: usize,
}

impl ChatCodec {
    /// A codec that accepts lines of at most `max_line` bytes (at least 1).
    pub fn new(max_line: usize) -> Self {
        Self { max_line: max_line.max(1), line: Vec::new(), telnet: Telnet::Data, discarded: 0 }
    }

    /// The line limit in bytes.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Bytes currently held for a partial line. Never more than the limit plus one
    /// (room for a carriage return before the newline).
    pub fn buffered(&self) -> usize {
        self.line.len()
    }

    /// Releases memory kept from earlier long lines when no partial line is pending.
    pub fn shrink_when_idle(&mut self) {
        if self.line.is_empty() && self.line.capacity() > RETAINED_LINE_CAPACITY {
            self.line = Vec::new();
        }
    }

    /// Feeds data bytes (telnet already removed) up to and including the first
    /// newline. Returns the number of bytes consumed and a frame if a line ended.
    fn take_data(&mut self, data: &[u8]) -> (usize, Option<Frame>) {
        let (chunk, consumed, ended) = match memchr::memchr2(b'\n', IAC, data) {
            Some(i) if data[i] == b'\n' => (&data[..i], i + 1, true),
            Some(i) => (&data[..i], i, false),
            None => (data, data.len(), false),
        };
        self.push(chunk);
        let frame = ended.then(|| self.finish_line());
        (consumed, frame)
    }

    fn push(&mut self, chunk: &[u8]) {
        if self.discarded > 0 {
            self.discarded += chunk.len();
            return;
        }
        // One byte of slack so a line of exactly the limit may still end in "\r\n".
        let room = (self.max_line + 1).saturating_sub(self.line.len());
        if chunk.len() <= room {
            self.line.extend_from_slice(chunk);
        } else {
            self.discarded = self.line.len() + chunk.len();
            self.line = Vec::new();
        }
    }

    fn finish_line(&mut self) -> Frame {
        if self.discarded > 0 {
            let bytes = std::mem::take(&mut self.discarded);
            return Frame::TooLong { bytes };
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        if self.line.len() > self.max_line {
            let bytes = self.line.len();
            self.line = Vec::new();
            return Frame::TooLong { bytes };
        }
        let text = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        self.shrink_when_idle();
        Frame::Line(text)
    }

    /// Advances the telnet state machine over one byte outside plain data.
    fn step_telnet(&mut self, byte: u8) {
        self.telnet = match (self.telnet, byte) {
            (Telnet::Data, _) => Telnet::Command, // only called with IAC in Data
            (Telnet::Command, SB) => Telnet::Subnegotiation,
            (Telnet::Command, WILL..=DONT) => Telnet::Option,
            (Telnet::Command, _) => Telnet::Data,
            (Telnet::Option, _) => Telnet::Data,
            (Telnet::Subnegotiation, IAC) => Telnet::SubnegotiationCommand,
            (Telnet::Subnegotiation, _) => Telnet::Subnegotiation,
            (Telnet::SubnegotiationCommand, SE) => Telnet::Data,
            (Telnet::SubnegotiationCommand, _) => Telnet::Subnegotiation,
        };
    }
}

impl Default for ChatCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE)
    }
}

impl Decoder for ChatCodec {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        let mut at = 0;
        while at < src.len() {
            if self.telnet == Telnet::Data && src[at] != IAC {
                let (consumed, frame) = self.take_data(&src[at..]);
                at += consumed;
                if frame.is_some() {
                    src.advance(at);
                    return Ok(frame);
                }
            } else {
                self.step_telnet(src[at]);
                at += 1;
            }
        }
        src.clear();
        Ok(None)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        if self.line.is_empty() && self.discarded == 0 {
            return Ok(None);
        }
        Ok(Some(self.finish_line()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut ChatCodec, input: &[u8]) -> Vec<Frame> {
        let mut buf = BytesMut::from(input);
        let mut frames = Vec::new();
        while let Some(frame) = codec.decode(&mut buf).expect("decode never fails") {
            frames.push(frame);
        }
        assert!(buf.is_empty(), "the codec consumes everything it is given");
        frames
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.to_owned())
    }

    #[test]
    fn accepts_lf_and_crlf() {
        let mut codec = ChatCodec::default();
        assert_eq!(decode_all(&mut codec, b"one\ntwo\r\nthree"), vec![line("one"), line("two")]);
        assert_eq!(decode_all(&mut codec, b"\n"), vec![line("three")]);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_character() {
        let mut codec = ChatCodec::default();
        assert_eq!(decode_all(&mut codec, b"a\xC3(b\n"), vec![line("a\u{FFFD}(b")]);
    }

    #[test]
    fn telnet_negotiation_is_removed() {
        let mut codec = ChatCodec::default();
        // IAC DO ECHO, IAC WILL SGA, IAC SB NAWS 0 80 0 24 IAC SE, IAC NOP, IAC IAC.
        let input = b"\xFF\xFD\x01he\xFF\xFB\x03llo\xFF\xFA\x1F\x00\x50\x00\x18\xFF\xF0 w\xFF\xF1o\xFF\xFFrld\n";
        assert_eq!(decode_all(&mut codec, input), vec![line("hello world")]);
    }

    #[test]
    fn telnet_sequence_split_across_reads() {
        let mut codec = ChatCodec::default();
        assert!(decode_all(&mut codec, b"hi\xFF").is_empty());
        assert!(decode_all(&mut codec, b"\xFD").is_empty());
        assert_eq!(decode_all(&mut codec, b"\x18there\n"), vec![line("hithere")]);
    }

    #[test]
    fn overlong_line_is_reported_and_the_next_line_works() {
        let mut codec = ChatCodec::new(8);
        let frames = decode_all(&mut codec, b"0123456789abcdef\nok\n");
        assert_eq!(frames, vec![Frame::TooLong { bytes: 16 }, line("ok")]);
    }

    #[test]
    fn overlong_line_across_many_reads_holds_no_more_than_the_limit() {
        let mut codec = ChatCodec::new(16);
        for _ in 0..1000 {
            assert!(decode_all(&mut codec, b"xxxxxxxxxx").is_empty());
            assert!(codec.buffered() <= 17);
        }
        assert_eq!(
            decode_all(&mut codec, b"\nnext\n"),
            vec![Frame::TooLong { bytes: 10_000 }, line("next")]
        );
    }

    #[test]
    fn line_of_exactly_the_limit_passes_with_either_ending() {
        let mut codec = ChatCodec::new(4);
        assert_eq!(decode_all(&mut codec, b"abcd\r\nabcd\n"), vec![line("abcd"), line("abcd")]);
        assert_eq!(decode_all(&mut codec, b"abcde\n"), vec![Frame::TooLong { bytes: 5 }]);
    }

    #[test]
    fn partial_line_at_eof_is_delivered() {
        let mut codec = ChatCodec::default();
        let mut buf = BytesMut::from(&b"bye"[..]);
        assert_eq!(codec.decode_eof(&mut buf).expect("no error"), Some(line("bye")));
        assert_eq!(codec.decode_eof(&mut buf).expect("no error"), None);
    }

    proptest::proptest! {
        #[test]
        fn partial_line_never_exceeds_the_limit(
            limit in 1usize..64,
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96), 0..48),
        ) {
            let mut codec = ChatCodec::new(limit);
            for chunk in chunks {
                let mut buf = BytesMut::from(&chunk[..]);
                while let Some(frame) = codec.decode(&mut buf).expect("decode never fails") {
                    if let Frame::Line(text) = frame {
                        // Lossy decoding may turn one bad byte into a three-byte U+FFFD.
                        proptest::prop_assert!(text.len() <= 3 * limit);
                        proptest::prop_assert!(!text.contains('\n'));
                    }
                }
                proptest::prop_assert!(buf.is_empty());
                proptest::prop_assert!(codec.buffered() <= limit + 1);
            }
        }
    }
}
