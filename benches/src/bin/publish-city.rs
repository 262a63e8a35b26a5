//! A simulated city's envelopes on a broker, as its sensors would send them: one MQTT client
//! per sensor, all at once, each publishing its envelopes in order at QoS 1.
//!
//! `publish-city prepare CITY DIR [json|binary]` encodes every sensor's envelopes (fast mode,
//! `CITY/envelopes/<sensor>.jsonl`) into `DIR/<sensor>.msgs` once, so that encoding is not
//! timed; `publish-city send DIR PORT` publishes them to the broker on 127.0.0.1:PORT and
//! returns once every message is acknowledged, printing the Unix time (seconds) it started
//! publishing at. mosquitto_pub cannot send binary payloads from a file of many messages.
//!
//! A `.msgs` file: the topic (u16 length, bytes), then each payload (u32 length, bytes),
//! little-endian.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["prepare", city, dir] => prepare(Path::new(city), Path::new(dir), wire::Encoding::Json),
        ["prepare", city, dir, encoding] => {
            let encoding = match encoding {
                "json" => wire::Encoding::Json,
                "binary" => wire::Encoding::Binary,
                other => bail!("encoding {other:?}: expected json or binary"),
            };
            prepare(Path::new(city), Path::new(dir), encoding)
        }
        ["send", dir, port] => {
            let port = port.parse().with_context(|| format!("port {port:?}"))?;
            send(Path::new(dir), port)
        }
        _ => bail!("usage: publish-city prepare CITY DIR [json|binary] | send DIR PORT"),
    }
}

fn prepare(city: &Path, dir: &Path, encoding: wire::Encoding) -> Result<()> {
    fs::create_dir_all(dir)?;
    let envelopes = city.join("envelopes");
    for entry in fs::read_dir(&envelopes).with_context(|| format!("{}", envelopes.display()))? {
        let path = entry?.path();
        let text = fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let env: wire::Envelope = serde_json::from_str(line)
                .with_context(|| format!("{} line {}", path.display(), i + 1))?;
            if out.is_empty() {
                let topic = env.topic();
                out.extend_from_slice(&u16::try_from(topic.len())?.to_le_bytes());
                out.extend_from_slice(topic.as_bytes());
            }
            let payload = match encoding {
                // As the simulator wrote it: the bytes mosquitto_pub -l would send.
                wire::Encoding::Json => line.as_bytes().to_vec(),
                wire::Encoding::Binary => env.encode(encoding),
            };
            out.extend_from_slice(&u32::try_from(payload.len())?.to_le_bytes());
            out.extend_from_slice(&payload);
        }
        if !out.is_empty() {
            let name = path.file_stem().context("a file name")?;
            fs::write(dir.join(name).with_extension("msgs"), out)?;
        }
    }
    Ok(())
}

/// The topic and payloads of a `.msgs` file.
fn messages(bytes: &[u8]) -> Result<(String, Vec<Vec<u8>>)> {
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
        let len = u32::from_le_bytes(take(&mut at, 4)?.try_into()?) as usize;
        payloads.push(take(&mut at, len)?.to_vec());
    }
    Ok((topic, payloads))
}

fn send(dir: &Path, port: u16) -> Result<()> {
    let mut sensors = Vec::new();
    for entry in fs::read_dir(dir)? {
        sensors.push(messages(&fs::read(entry?.path())?)?);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
    rt.block_on(async {
        let tasks: Vec<_> = sensors
            .into_iter()
            .enumerate()
            .map(|(i, (topic, payloads))| tokio::spawn(publish(i, port, topic, payloads)))
            .collect();
        for t in tasks {
            t.await??;
        }
        anyhow::Ok(())
    })?;
    println!("{started:.6}");
    Ok(())
}

async fn publish(i: usize, port: u16, topic: String, payloads: Vec<Vec<u8>>) -> Result<()> {
    let mut o = MqttOptions::new(format!("publish-city-{i}"), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(4 << 20, 4 << 20)
        .set_inflight(20);
    let (client, mut events) = AsyncClient::new(o, 64);
    let n = payloads.len();
    let sending = tokio::spawn(async move {
        for p in payloads {
            client.publish(&topic, QoS::AtLeastOnce, false, p).await?;
        }
        anyhow::Ok(client)
    });
    let mut acked = 0;
    while acked < n {
        if let Event::Incoming(Packet::PubAck(_)) = events.poll().await? {
            acked += 1;
        }
    }
    sending.await??.disconnect().await?;
    Ok(())
}
