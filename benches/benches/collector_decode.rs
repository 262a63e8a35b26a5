//! The collector's per-message work before ClickHouse: one full sightings envelope (500
//! sightings, as an agent sends after a long batch age or a spool drain) decoded and
//! validated into rows, and the rows turned into the stream stage's records. Single thread,
//! from memory.

use std::collections::HashMap;

use collector::config::Config;
use collector::decode::{decode, Decoded};
use collector::visits::Seen;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wire::{DeviceKey, Envelope, Fingerprint, IdentityClass, LinkKey, Millis, Sighting};

const SIGHTINGS: usize = 500;
const SENT_MS: i64 = 1_668_506_405_120;

fn envelope() -> Vec<u8> {
    // A fixed linear congruential sequence: varied keys, times and signal levels.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        x
    };
    let sightings = (0..SIGHTINGS)
        .map(|_| {
            let first = SENT_MS - 600_000 + (next() % 540_000) as i64;
            Sighting {
                device: DeviceKey(next()),
                link: Some(LinkKey(next())),
                next: None,
                class: if next() % 3 == 0 {
                    IdentityClass::Global
                } else {
                    IdentityClass::Local
                },
                fingerprint: Fingerprint(next() as u32),
                first_seen: Millis(first),
                last_seen: Millis(first + (next() % 60_000) as i64),
                frames: 1 + (next() % 40) as u32,
                rssi_max: -30 - (next() % 60) as i8,
                rssi_mean: -60.0 - (next() % 300) as f32 / 10.0,
                is_final: next() % 8 != 0,
            }
        })
        .collect();
    serde_json::to_vec(&Envelope {
        v: wire::VERSION,
        sensor: "store-0001-s1".into(),
        site: "store-0001".into(),
        seq: 42,
        epoch: 19_311,
        sent_at: Millis(SENT_MS),
        sightings,
    })
    .expect("serializable")
}

fn bench(c: &mut Criterion) {
    let payload = envelope();
    let topic = wire::topic::sightings("store-0001", "store-0001-s1");
    let inventory = HashMap::from([("store-0001-s1".to_owned(), "store-0001".to_owned())]);
    let cfg = Config::parse(
        "version = 1\n[clickhouse]\nurl = \"http://127.0.0.1:8123\"\n\
         [mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\nclient_id = \"bench\"\n",
    )
    .expect("valid config");
    let mut g = c.benchmark_group("collector");
    g.throughput(Throughput::Elements(SIGHTINGS as u64));
    g.bench_function("decode 500-sighting envelope", |b| {
        b.iter(
            || match decode(&topic, &payload, SENT_MS, &inventory, cfg.ingest()) {
                Decoded::Sightings(rows, _, _) => rows,
                _ => panic!("a valid envelope"),
            },
        )
    });
    g.bench_function("decode + stream records", |b| {
        b.iter(
            || match decode(&topic, &payload, SENT_MS, &inventory, cfg.ingest()) {
                Decoded::Sightings(rows, _, _) => {
                    rows.iter().map(|r| Seen::new(r, false)).collect::<Vec<_>>()
                }
                _ => panic!("a valid envelope"),
            },
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
