//! A simulated city's envelopes on a broker, as its sensors would send them: one MQTT client
//! per sensor, all at once, each publishing its envelopes in order at QoS 1.
//!
//! `publish-city prepare CITY DIR [json|binary]` encodes every sensor's envelopes (fast mode,
//! `CITY/envelopes/<sensor>.jsonl`) into `DIR/<sensor>.msgs` once, so that encoding is not
//! timed; `publish-city send DIR PORT [SLOT_MINS]` publishes them to the broker on
//! 127.0.0.1:PORT and returns once every message is acknowledged, printing the Unix time
//! (seconds) it started publishing at. mosquitto_pub cannot send binary payloads from a file
//! of many messages.
//!
//! Without `SLOT_MINS` every sensor sends as fast as it can, so a month's city drifts apart
//! by days (a busy board's sensor has many more messages than a quiet store's). With it, the
//! sensors keep together as live ones do: event time is cut in slots of `SLOT_MINS` minutes,
//! and no sensor sends a batch closed in slot k before every sensor's batches of slot k - 2
//! are acknowledged by the broker (a sensor is at most two slots ahead of the slowest; one
//! slot of slack keeps the sensors from waiting for each other at every slot).
//!
//! With `COLLECTOR BACKLOG` as well (the collector's metrics address, `HOST:PORT`, and a
//! number of messages), the publisher also keeps pace with the collector, as a fleet whose
//! broker has room for only so much does: no sensor starts a slot while more than `BACKLOG`
//! of the messages the broker has acknowledged are not yet received by the collector
//! (`footfall_mqtt_messages_total` less `footfall_mqtt_repeats_total`: a message the broker
//! sends again after a reconnection, or that a reconnecting sensor published twice, is not
//! one more received). Without it a publisher faster than the collector fills the broker's
//! queue until the machine runs out of memory; counting repeats as received let a month
//! under faults pile millions of messages up in the broker's in-flight list (run 18 in
//! benches/README.md), which Mosquitto walks on each CONNECT and acknowledgement.
//!
//! A client whose connection drops (a broker too busy to answer a keepalive) connects again
//! with its session, and its unacknowledged messages are sent again; each reconnection is
//! said on stderr as it happens, and counted at the end.
//!
//! The `.msgs` files are [`benches::msgs`]'s.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use benches::msgs::{messages, Sensor};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::watch;

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
        ["send", dir, port] => send(Path::new(dir), parse("port", port)?, None, None),
        ["send", dir, port, slot_mins] => send(
            Path::new(dir),
            parse("port", port)?,
            Some(slot_ms(slot_mins)?),
            None,
        ),
        ["send", dir, port, slot_mins, collector, backlog] => send(
            Path::new(dir),
            parse("port", port)?,
            Some(slot_ms(slot_mins)?),
            Some((collector.to_owned(), parse("BACKLOG", backlog)?)),
        ),
        _ => bail!(
            "usage: publish-city prepare CITY DIR [json|binary] \
             | send DIR PORT [SLOT_MINS [COLLECTOR BACKLOG]]"
        ),
    }
}

fn slot_ms(slot_mins: &str) -> Result<i64> {
    let mins: i64 = parse("SLOT_MINS", slot_mins)?;
    if mins < 1 {
        bail!("SLOT_MINS {mins}: at least 1");
    }
    Ok(mins * 60_000)
}

fn parse<T: std::str::FromStr>(what: &str, s: &str) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    s.parse().with_context(|| format!("{what} {s:?}"))
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
            out.extend_from_slice(&env.sent_at.0.to_le_bytes());
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

/// The slots every sensor walks through together: `(first slot's start, slot length, how
/// many)`, or one slot holding everything.
fn slots(sensors: &[Sensor], slot_ms: Option<i64>) -> (i64, i64, i64) {
    let times = sensors.iter().flat_map(|s| s.payloads.iter().map(|p| p.0));
    let (first, last) = times.fold((i64::MAX, i64::MIN), |(a, b), t| (a.min(t), b.max(t)));
    match slot_ms {
        Some(ms) if first <= last => {
            let start = first.div_euclid(ms) * ms;
            (start, ms, (last - start) / ms + 1)
        }
        _ => (i64::MIN, i64::MAX, 1),
    }
}

fn send(
    dir: &Path,
    port: u16,
    slot_ms: Option<i64>,
    collector: Option<(String, u64)>,
) -> Result<()> {
    let mut sensors = Vec::new();
    for entry in fs::read_dir(dir)? {
        sensors.push(messages(&fs::read(entry?.path())?)?);
    }
    let slots = slots(&sensors, slot_ms);
    let pace = Arc::new(Pace::new(sensors.len(), slots.2));
    if let Some((address, backlog)) = collector {
        let pace = pace.clone();
        std::thread::spawn(move || pace.follow(&address, backlog));
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
            .map(|(i, s)| tokio::spawn(publish(i, port, s, slots, pace.clone())))
            .collect();
        for t in tasks {
            t.await??;
        }
        anyhow::Ok(())
    })?;
    let reconnections = pace.reconnections.load(Ordering::Relaxed);
    if reconnections > 0 {
        eprintln!("publish-city: {reconnections} reconnections");
    }
    println!("{started:.6}");
    Ok(())
}

/// How far the sensors have got together.
struct Pace {
    sensors: usize,
    /// Per slot, the sensors whose batches of it are all acknowledged.
    done: Mutex<Vec<usize>>,
    /// How many leading slots every sensor has finished.
    all: watch::Sender<i64>,
    /// Messages the broker has acknowledged, all sensors together.
    acked: AtomicU64,
    /// Whether the collector is close enough behind for a sensor to start a slot.
    open: watch::Sender<bool>,
    reconnections: AtomicU64,
}

impl Pace {
    fn new(sensors: usize, slots: i64) -> Pace {
        Pace {
            sensors,
            done: Mutex::new(vec![0; usize::try_from(slots).unwrap_or(0)]),
            all: watch::channel(0).0,
            acked: AtomicU64::new(0),
            open: watch::channel(true).0,
            reconnections: AtomicU64::new(0),
        }
    }

    /// Reads the collector's count of messages received once every 100 ms, forever, and opens
    /// the gate while it is at most `backlog` behind the broker's acknowledgements. While the
    /// metrics cannot be read, the gate stays as it was. A gate shut for a minute is said on
    /// stderr, with both counts, each minute it stays shut.
    fn follow(&self, address: &str, backlog: u64) {
        let url = format!("http://{address}/metrics");
        let mut shut_since: Option<Instant> = None;
        let mut said = 0;
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let Some(received) = ureq::get(&url)
                .call()
                .ok()
                .and_then(|r| r.into_string().ok())
                .and_then(|text| {
                    let metric = |name| testkit::metric::<f64>(&text, name);
                    Some(
                        metric("footfall_mqtt_messages_total")?
                            - metric("footfall_mqtt_repeats_total")?,
                    )
                })
            else {
                continue;
            };
            let acked = self.acked.load(Ordering::Relaxed);
            let behind = acked.saturating_sub(received as u64);
            if behind <= backlog {
                (shut_since, said) = (None, 0);
            } else {
                let shut = shut_since
                    .get_or_insert_with(Instant::now)
                    .elapsed()
                    .as_secs()
                    / 60;
                if shut > said {
                    eprintln!(
                        "publish-city: held back for {shut} min: {acked} messages acknowledged by \
                         the broker, {received} received by the collector (repeats excluded)"
                    );
                }
                said = shut;
            }
            self.open.send_if_modified(|open| {
                let before = *open;
                *open = behind <= backlog;
                *open != before
            });
        }
    }

    fn finished(&self, slot: i64) {
        let mut done = self.done.lock().expect("not poisoned");
        done[slot as usize] += 1;
        // Wakes the waiting sensors only when a slot is finished by all.
        self.all.send_if_modified(|all| {
            let before = *all;
            while done.get(*all as usize) == Some(&self.sensors) {
                *all += 1;
            }
            *all != before
        });
    }

    /// Returns once every sensor has finished the first `n` slots and the collector is close
    /// enough behind.
    async fn wait_for_all(&self, n: i64) -> Result<()> {
        self.all.subscribe().wait_for(|all| *all >= n).await?;
        self.open.subscribe().wait_for(|open| *open).await?;
        Ok(())
    }
}

async fn publish(
    i: usize,
    port: u16,
    sensor: Sensor,
    (start, slot_ms, slots): (i64, i64, i64),
    pace: Arc<Pace>,
) -> Result<()> {
    let mut o = MqttOptions::new(format!("publish-city-{i}"), "127.0.0.1", port);
    // A persistent session: after a reconnection the broker and the client resend what is
    // unacknowledged.
    o.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false)
        .set_max_packet_size(4 << 20, 4 << 20)
        .set_inflight(20);
    let (client, mut events) = AsyncClient::new(o, 64);
    let (acks, mut acked) = watch::channel(0usize);
    let polling = {
        let pace = pace.clone();
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        n += 1;
                        acks.send_replace(n);
                        pace.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => return anyhow::Ok(()),
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("publish-city: sensor {i} reconnecting: {e}");
                        pace.reconnections.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })
    };
    let mut payloads = sensor.payloads.into_iter().peekable();
    let mut sent = 0;
    for slot in 0..slots {
        pace.wait_for_all(slot.saturating_sub(1)).await?;
        let end = start.saturating_add((slot + 1).saturating_mul(slot_ms));
        while let Some((_, p)) = payloads.next_if(|(t, _)| *t < end || slot + 1 == slots) {
            client
                .publish(&sensor.topic, QoS::AtLeastOnce, false, p)
                .await?;
            sent += 1;
        }
        acked.wait_for(|n| *n >= sent).await?;
        pace.finished(slot);
    }
    client.disconnect().await?;
    polling.await?
}
