//! Fuzzes `chat_proto::ChatCodec` with arbitrary bytes cut into arbitrary reads.
//!
//! Input layout: byte 0 picks the line limit, byte 1 seeds the read sizes
//! (0 = the whole stream in one read), the rest is the byte stream a client
//! sends. Checked on every input:
//! - `decode` never fails or panics and consumes every byte it is given;
//! - the partial line held never exceeds the limit plus one byte;
//! - a line never contains `\n` and is at most 3 × the limit in bytes
//!   (lossy UTF-8 may turn one byte into a three-byte U+FFFD);
//! - a discarded line reports more bytes than the limit;
//! - how the stream is cut into reads changes nothing: the frames equal
//!   those of the same stream decoded in one read;
//! - without telnet bytes (0xFF) the frames equal a plain reference model:
//!   split at `\n`, drop one trailing `\r`, too long if over the limit.
#![no_main]

use bytes::BytesMut;
use chat_proto::{ChatCodec, Frame};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let [limit_byte, seed, stream @ ..] = data else { return };
    let max_line = match limit_byte {
        0xF0..=0xFF => chat_proto::DEFAULT_MAX_LINE,
        b => 1 + usize::from(*b % 64),
    };
    let chunked = decode_in_reads(max_line, stream, read_sizes(*seed, stream.len()));
    let whole = decode_in_reads(max_line, stream, vec![stream.len()]);
    assert_eq!(chunked, whole, "cutting the stream into reads changed the frames");
    if !stream.contains(&0xFF) {
        assert_eq!(kinds_only(&whole), reference(max_line, stream), "differs from the reference");
    }
});

/// Read sizes from a small xorshift generator; each read is 1 to 16 bytes.
fn read_sizes(seed: u8, total: usize) -> Vec<usize> {
    if seed == 0 {
        return vec![total];
    }
    let mut state = u32::from(seed).wrapping_mul(0x9E37_79B9) | 1;
    let mut sizes = Vec::new();
    let mut left = total;
    while left > 0 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = (1 + state as usize % 16).min(left);
        sizes.push(size);
        left -= size;
    }
    sizes
}

fn decode_in_reads(max_line: usize, stream: &[u8], sizes: Vec<usize>) -> Vec<Frame> {
    let mut codec = ChatCodec::new(max_line);
    let mut frames = Vec::new();
    let mut at = 0;
    for size in sizes {
        let mut buf = BytesMut::from(&stream[at..at + size]);
        at += size;
        while let Some(frame) = codec.decode(&mut buf).expect("decode never fails") {
            check_frame(max_line, &frame);
            frames.push(frame);
            assert!(codec.buffered() <= max_line + 1);
        }
        assert!(buf.is_empty(), "the codec consumes every byte it is given");
        assert!(codec.buffered() <= max_line + 1, "partial line over the limit");
    }
    let mut rest = BytesMut::new();
    while let Some(frame) = codec.decode_eof(&mut rest).expect("decode_eof never fails") {
        check_frame(max_line, &frame);
        frames.push(frame);
    }
    assert_eq!(codec.buffered(), 0, "nothing held after the end of the stream");
    frames
}

fn check_frame(max_line: usize, frame: &Frame) {
    match frame {
        Frame::Line(text) => {
            assert!(!text.contains('\n'), "newline inside a frame: {text:?}");
            assert!(text.len() <= 3 * max_line, "line of {} bytes, limit {max_line}", text.len());
        }
        Frame::TooLong { bytes } => assert!(*bytes > max_line, "{bytes} bytes is not too long"),
    }
}

/// The rules of the wire without telnet: lines end at `\n`, one `\r` before
/// it is dropped, a line over the limit is discarded; a final partial line
/// counts at the end of the stream. Discarded lines compare by kind only.
fn reference(max_line: usize, stream: &[u8]) -> Vec<Frame> {
    let mut segments: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
    if segments.last().is_some_and(|last| last.is_empty()) {
        segments.pop();
    }
    let frame = |segment: &[u8]| {
        let line = segment.strip_suffix(b"\r").unwrap_or(segment);
        if line.len() > max_line {
            Frame::TooLong { bytes: 0 }
        } else {
            Frame::Line(String::from_utf8_lossy(line).into_owned())
        }
    };
    segments.into_iter().map(frame).collect()
}

fn kinds_only(frames: &[Frame]) -> Vec<Frame> {
    let forget_count = |frame: &Frame| match frame {
        Frame::TooLong { .. } => Frame::TooLong { bytes: 0 },
        line => line.clone(),
    };
    frames.iter().map(forget_count).collect()
}
