//! Benchmark support. The benchmarks are `benches/*.rs` (criterion) and `agent.sh` (whole
//! processes against baselines); `repeat-pcap` builds their large inputs from real captures,
//! `overlay-pcap` puts the Pintor phones in one room for the counting bench; `publish-city`
//! and the stages bench read a city's encoded envelopes ([`msgs`]).

pub mod msgs {
    //! A simulated city's envelopes, encoded once by `publish-city prepare` into a `.msgs`
    //! file per sensor: the topic (u16 length, bytes), then for each payload the batch's
    //! `sent_at` (i64 ms) and the payload (u32 length, bytes), little-endian.

    use anyhow::{Context, Result};

    /// One sensor's messages: the topic, and each payload with its batch's `sent_at` (ms).
    pub struct Sensor {
        pub topic: String,
        pub payloads: Vec<(i64, Vec<u8>)>,
    }

    /// A `.msgs` file's messages.
    pub fn messages(bytes: &[u8]) -> Result<Sensor> {
        let take = |at: &mut usize, n: usize| -> Result<&[u8]> {
            let s = bytes.get(*at..*at + n).context("a truncated .msgs file")?;
            *at += n;
            Ok(s)
        };
        let mut at = 0;
        let len = u16::from_le_bytes(take(&mut at, 2)?.try_into()?);
        let topic = String::from_utf8(take(&mut at, len.into())?.to_vec())?;
        let mut payloads = Vec::new();
        while at < bytes.len() {
            let sent_at = i64::from_le_bytes(take(&mut at, 8)?.try_into()?);
            let len = u32::from_le_bytes(take(&mut at, 4)?.try_into()?) as usize;
            payloads.push((sent_at, take(&mut at, len)?.to_vec()));
        }
        Ok(Sensor { topic, payloads })
    }
}
