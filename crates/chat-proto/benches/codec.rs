//! Criterion benchmarks of the line decoder: a read buffer full of ordinary lines, and the same
//! with telnet negotiation mixed in, as a telnet client sends it. Run with `cargo bench -p chat-proto`.

use bytes::BytesMut;
use chat_proto::{ChatCodec, DEFAULT_MAX_LINE, Frame};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tokio_util::codec::Decoder;

/// Lines in one benchmark buffer.
const LINES: usize = 1000;

fn plain_lines() -> Vec<u8> {
    let mut data = Vec::new();
    for i in 0..LINES {
        data.extend_from_slice(
            format!("message {i} from a chat client, about sixty bytes\r\n").as_bytes(),
        );
    }
    data
}

/// Every tenth line carries a telnet option (IAC DO ECHO), a command (IAC NOP) and a window-size
/// subnegotiation (IAC SB NAWS ... IAC SE), as telnet sends at the start and on resize.
fn telnet_lines() -> Vec<u8> {
    let mut data = Vec::new();
    for i in 0..LINES {
        if i % 10 == 0 {
            data.extend_from_slice(&[0xFF, 0xFD, 0x01, 0xFF, 0xF1]);
            data.extend_from_slice(&[0xFF, 0xFA, 0x1F, 0x00, 0x50, 0x00, 0x18, 0xFF, 0xF0]);
        }
        data.extend_from_slice(format!("message {i} typed in telnet").as_bytes());
        data.extend_from_slice(&[0xFF, 0xFB, 0x03]);
        data.extend_from_slice(b" with more text\r\n");
    }
    data
}

/// Decodes every frame in `data` with a fresh codec and returns how many lines came out.
fn decode_all(data: &[u8]) -> usize {
    let mut codec = ChatCodec::new(DEFAULT_MAX_LINE);
    let mut buf = BytesMut::from(data);
    let mut lines = 0;
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        if let Frame::Line(line) = frame {
            black_box(line);
            lines += 1;
        }
    }
    lines
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for (name, data) in [("plain_lines", plain_lines()), ("telnet_lines", telnet_lines())] {
        assert_eq!(decode_all(&data), LINES, "{name}: every line decodes");
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function(name, |b| b.iter(|| decode_all(black_box(&data))));
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
