//! Micro-benchmarks of the log's hot paths: framing a record (encode and
//! checksum), checking and decoding it, applying changes, and replaying a
//! 100,000-record log through `Store::open`.
//!
//! Run: `cargo bench --bench wal`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ticketlog::inspect::{self, frame_record};
use ticketlog::{Change, Options, Store, TicketId, Timestamp};

/// A create like the peers harness's: 24-byte title, 200-byte description.
fn created(id: u64) -> Change {
    Change::Created {
        id: TicketId::from(id),
        title: format!("Ticket number {id:010}").try_into().unwrap(),
        description: "x".repeat(200).as_str().try_into().unwrap(),
        at: Timestamp::from_unix_millis(1_800_000_000_000 + id),
    }
}

fn record_encode(c: &mut Criterion) {
    let changes = vec![created(12_345)];
    let mut out = Vec::with_capacity(512);
    let mut group = c.benchmark_group("record");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode+checksum", |b| {
        b.iter(|| {
            out.clear();
            frame_record(&mut out, 0, black_box(&changes)).unwrap();
            black_box(out.len())
        })
    });
    let mut framed = Vec::new();
    frame_record(&mut framed, 0, &changes).unwrap();
    group.bench_function("decode+verify", |b| {
        b.iter(|| black_box(inspect::decode_record(black_box(&framed)).unwrap()))
    });
    group.finish();
}

fn apply(c: &mut Criterion) {
    let changes: Vec<Change> = (1..=10_000).map(created).collect();
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(changes.len() as u64));
    group.bench_function("10k creates", |b| {
        b.iter_batched(
            || changes.clone(),
            |changes| black_box(ticketlog::bench_support::apply_all(changes).unwrap()),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn replay(c: &mut Criterion) {
    const RECORDS: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = inspect::record::FileHeader::new(1).encode().to_vec();
    for id in 1..=RECORDS {
        frame_record(&mut bytes, 0, &[created(id)]).unwrap();
    }
    std::fs::write(dir.path().join(inspect::LOG_FILE_NAME), &bytes).unwrap();
    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("open 100k records", |b| {
        b.iter(|| {
            let store = Store::open(dir.path(), Options::default()).unwrap();
            assert_eq!(store.recovery().records_replayed, RECORDS);
            store.close().unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, record_encode, apply, replay);
criterion_main!(benches);
