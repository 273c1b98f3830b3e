//! Criterion benchmarks of the sanitiser on the text it meets: plain ASCII, text full of escape
//! sequences and controls, and mixed Unicode (accents, CJK, emoji with joiners, bidi marks).
//! Run with `cargo bench -p chat-proto`.

use chat_proto::sanitize_text;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn ascii() -> String {
    "The quick brown fox jumps over the lazy dog, then asks who is online. ".repeat(4)
}

fn escapes() -> String {
    "\x1b[31mred\x1b[0m \x1b]0;title\x07 tab\there \x08\x08bs \u{202e}evil\u{202c} \u{9b}2J \x00nul "
        .repeat(4)
}

fn unicode() -> String {
    "Grüße aus Köln! 你好，世界 👩\u{200d}💻 bonjour ça va ? \u{200b}zero width Привет 🇫🇷 "
        .repeat(4)
}

fn sanitize(c: &mut Criterion) {
    let mut group = c.benchmark_group("sanitize");
    for (name, text) in [("ascii", ascii()), ("escapes", escapes()), ("unicode", unicode())] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| b.iter(|| sanitize_text(black_box(&text))));
    }
    group.finish();
}

criterion_group!(benches, sanitize);
criterion_main!(benches);
