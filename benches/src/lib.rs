//! Benchmark support. The benchmarks are `benches/*.rs` (criterion) and `agent.sh` (whole
//! processes against baselines); `repeat-pcap` builds their large inputs from real captures,
//! `overlay-pcap` puts the Pintor phones in one room for the counting bench.
