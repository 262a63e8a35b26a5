//! MQTT -> rows -> ClickHouse, at least once: a message is acknowledged (manual QoS 1 acks,
//! in arrival order) only after the rows it produced, or its rejection, are committed. A
//! crash loses nothing (the broker redelivers what was not acknowledged), and redeliveries
//! collapse on the tables' keys (within a session, a message taken already is only
//! acknowledged, `Taken`). While ClickHouse is down the batch is retried with the same
//! rows and nothing more is read: the channel from the MQTT task fills, the task stops
//! polling, and the broker holds the messages (backpressure, bounded memory).
//!
//! Committed sightings go on to the stream stage through a [`Feed`], which turns them into
//! site visits.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use firmware_config::MqttTlsFiles;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, PubAck, Publish,
    QoS, SubscribeReasonCode, TlsConfiguration, Transport,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, trace, warn};

use crate::ch;
use crate::ch::rows::{BatchRow, BridgeRow, QuarantineRow, RejectedRow, SightingRow, StatusRow};
use crate::config::Config;
use crate::decode::{decode, Decoded};
use crate::inventory::Inventory;
use crate::metrics::Metrics;
use crate::quarantine;
use crate::reason::Reason;
use crate::stream::{wall_clock_us, Feed, StageError, Ticket};

/// Messages read ahead of the batch being committed.
const CHANNEL: usize = 4096;
/// Messages the processor takes from the channel at a time, at most.
const DRAIN: usize = 256;
/// How long the MQTT task lets messages gather in the socket after a read that emptied it.
/// Mosquitto writes each message as it gets one, so a collector that keeps up read them one
/// by one, and each cost a read and a wakeup of both tasks: half the collector's CPU at the
/// agents' default batch age (benches/README.md, run 38). A few milliseconds more before a
/// message is in a batch, against batches of seconds.
const GATHER: Duration = Duration::from_millis(2);
/// The packets rumqttc takes from the socket in one read, at most (its `max_readb_count`, 10,
/// counted from 1).
const READ_MAX: usize = 9;
/// How often process 0 looks for held messages a `requeue` asked for.
const REPLAY_EVERY: Duration = Duration::from_secs(2);
/// A batch closes after this long without a new message, once nothing is being written and
/// it is at least a quarter of `ingest.batch_max_age` old.
const IDLE: Duration = Duration::from_millis(20);
/// The payload bytes of the messages received and not yet taken by the processor, at most
/// (and at most `ingest.batch_max_rows` messages): past it the MQTT task stops reading.
const HELD_MAX_BYTES: usize = 64 << 20;
/// Messages remembered by [`Taken`]: a million, more than a collector holds unacknowledged
/// (its channel, what the MQTT task holds, two batches); when full, about 27 MiB by
/// arithmetic (8 bytes each in the queue, and a set of 2^21 slots of 9 bytes).
const TAKEN: usize = 1 << 20;
/// The client's request channel: the subscriptions a connection sends, and the disconnect
/// (the acknowledgements do not go through it: [`write_acks`]).
const REQUEST_ROOM: usize = 64;

/// The messages the processor took in this session, the last [`TAKEN`], by a 64-bit hash of
/// topic and payload. A message the collector took but had not acknowledged when the
/// connection broke comes again after the reconnection, and a sensor that replays its spool
/// sends again what it sent: a message taken already is only acknowledged (after the batch it
/// is in, like any other; its first copy is in that batch or an earlier one, which commits
/// first, or the process stops and the broker sends both again), not decoded, written or fed
/// to the stream stage again. Byte for byte the same message only: a sensor that reused a
/// batch number for other sightings is decoded as before. (Most of what a broker flags as
/// sent again after a reconnection was never read: 959 of 3,616,804 at city scale were
/// repeats, benches/README.md, "Run 16b".)
struct Taken {
    order: VecDeque<u64>,
    seen: hashbrown::HashSet<u64>,
}

impl Taken {
    fn new() -> Taken {
        Taken {
            order: VecDeque::new(),
            seen: hashbrown::HashSet::new(),
        }
    }

    /// True if the message was taken already; else remembers it.
    fn again(&mut self, topic: &str, payload: &[u8]) -> bool {
        let id = self.seen.hasher().hash_one((topic, payload));
        if !self.seen.insert(id) {
            return true;
        }
        if self.order.len() == TAKEN {
            let oldest = self.order.pop_front().expect("full");
            self.seen.remove(&oldest);
        }
        self.order.push_back(id);
        false
    }
}

#[derive(Default)]
struct Batch {
    sightings: Vec<SightingRow>,
    /// A row for each message with sightings stored (its sensor's `seq`).
    batches: Vec<BatchRow>,
    bridges: Vec<BridgeRow>,
    /// Sightings of a newer epoch came: the bridges of epochs before this one are dropped
    /// after the commit (wire crate docs, "Epoch bridges").
    drop_bridges_before: Option<u32>,
    status: Vec<StatusRow>,
    rejected: Vec<RejectedRow>,
    /// Messages held, and replayed ones marked so.
    quarantine: Vec<QuarantineRow>,
    /// In arrival order, acknowledged after the commit.
    messages: Vec<Publish>,
    opened: Option<Instant>,
    /// Oldest event time in the batch, for the lag gauge.
    oldest_ms: Option<i64>,
    /// Unsettled from its first message until the stream stage has what it made of it.
    ticket: Option<Ticket>,
}

impl Batch {
    fn rows(&self) -> usize {
        self.sightings.len() + self.status.len() + self.rejected.len() + self.quarantine.len()
    }
}

/// Turns decoded messages into a batch's rows: counts and logs the rejections, holds the
/// messages refused for a reason the operator can fix (within the day's budget), follows
/// the newest epoch.
struct Intake {
    metrics: Arc<Metrics>,
    rejections: RejectionLog,
    /// The newest epoch of a sighting so far (0: none yet, so the first batch checks).
    newest_epoch: u32,
    /// Payload bytes this process may hold in the quarantine, and keep in `rejected`, a day.
    held: DailyBudget,
    kept: DailyBudget,
}

/// Bytes allowed a day (UTC), so a flood of refused messages cannot grow a table without
/// bound.
struct DailyBudget {
    day: u16,
    used: u64,
    max: u64,
}

impl DailyBudget {
    fn new(max: u64) -> DailyBudget {
        DailyBudget {
            day: 0,
            used: 0,
            max,
        }
    }

    /// Takes `bytes` from the budget of `day` (days since 1970); false if they do not fit.
    fn take(&mut self, bytes: usize, day: u16) -> bool {
        if self.day != day {
            (self.day, self.used) = (day, 0);
        }
        let bytes = bytes as u64;
        if self.used + bytes > self.max {
            return false;
        }
        self.used += bytes;
        true
    }
}

impl Intake {
    /// Adds what `payload` on `topic`, received at `received_ms`, decoded to. True if it
    /// was held; `replay`: the held row it was replayed from.
    fn add(
        &mut self,
        batch: &mut Batch,
        (topic, payload, received_ms): (&str, &[u8], i64),
        decoded: Decoded,
        replay: Option<&QuarantineRow>,
    ) -> bool {
        // A refused message, or the refused sightings of an accepted one.
        let mut rejected = Vec::new();
        match decoded {
            Decoded::Sightings(rows, bridges, refused) => {
                rejected = refused;
                if let Some(o) = rows.iter().map(|r| r.last_ms).min() {
                    batch.oldest_ms = Some(batch.oldest_ms.map_or(o, |b| b.min(o)));
                }
                if let Some(epoch) = rows.first().map(|r| r.epoch) {
                    if epoch > self.newest_epoch {
                        self.newest_epoch = epoch;
                        batch.drop_bridges_before = epoch.checked_sub(1);
                    }
                }
                batch.bridges.extend(bridges);
                let unlinked = rows.iter().filter(|r| r.link == 0).count();
                self.metrics.sightings_unlinked.inc_by(unlinked as u64);
                batch.batches.extend(BatchRow::of(&rows));
                batch.sightings.extend(rows);
            }
            Decoded::Status(row) => batch.status.push(row),
            Decoded::Rejected(reason, row) => rejected.push((reason, row)),
        }
        // The whole message, for a requeue after the fix (its accepted sightings too: a
        // replay writes them again, which their keys collapse).
        let fixable = rejected
            .iter()
            .find(|(r, _)| r.held())
            .map(|(r, row)| (*r, row.detail.clone()));
        let today = ch::rows::day_of(wire::Millis::now().0);
        for (reason, mut row) in rejected {
            self.metrics.rejected(reason);
            trace!(reason = reason.as_str(), topic = %row.topic, detail = %row.detail, "rejected");
            self.rejections.note(reason);
            if !self.kept.take(row.payload.len(), today) {
                // Counted, with its reason, topic, size and hash; its bytes are not kept.
                row.payload.clear();
                self.metrics.rejected_unkept.inc();
            }
            batch.rejected.push(row);
        }
        let Some((reason, detail)) = fixable else {
            return false;
        };
        // A replay is held already: only new messages count against the budget.
        if replay.is_none() {
            if !self.held.take(payload.len(), today) {
                self.metrics.quarantine_full.inc();
                return false;
            }
            self.metrics.quarantined.inc();
        }
        let mut row = quarantine::hold(
            topic,
            payload,
            ch::rows::fnv64(&[payload]),
            received_ms,
            (reason, &detail),
            wall_clock_us(),
        );
        if let Some(q) = replay {
            row.requested = q.requested;
            row.version = row.version.max(q.version + 1);
        }
        batch.quarantine.push(row);
        true
    }
}

/// Why ingest stopped. What was read and not committed stays unacknowledged at the broker,
/// which redelivers it to the next start.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Stage(#[from] StageError),
    /// The MQTT task ended: acknowledgements can no longer be sent.
    #[error("the MQTT task stopped")]
    Mqtt,
    #[error("the commit task panicked")]
    Commit(#[source] tokio::task::JoinError),
}

/// How often at most a summary of the rejected messages is logged.
const REJECTIONS_LOGGED_EVERY: Duration = Duration::from_secs(10);

/// Rejected messages are counted (metrics, the `rejected` table) and logged as one summary
/// at most every 10 s, not a line per message: a flood of bad messages must not become a
/// flood of log lines.
struct RejectionLog {
    /// When the last summary was logged; none yet, so the first rejection is logged at once.
    logged: Option<Instant>,
    counts: std::collections::BTreeMap<Reason, u64>,
}

impl RejectionLog {
    fn new() -> RejectionLog {
        RejectionLog {
            logged: None,
            counts: Default::default(),
        }
    }

    fn note(&mut self, reason: Reason) {
        *self.counts.entry(reason).or_default() += 1;
        if self
            .logged
            .is_none_or(|t| t.elapsed() >= REJECTIONS_LOGGED_EVERY)
        {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.counts.is_empty() {
            return;
        }
        let total: u64 = self.counts.values().sum();
        let by_reason = self
            .counts
            .iter()
            .map(|(r, n)| format!("{}={n}", r.as_str()))
            .collect::<Vec<_>>()
            .join(" ");
        warn!(
            rejected = total,
            by_reason, "messages rejected (each kept in the rejected table with its reason)"
        );
        self.counts.clear();
        self.logged = Some(Instant::now());
    }
}

/// The client's options; `tls`, the TLS files read at start (a missing file stops the start
/// with its field named).
fn options(cfg: &Config, tls: Option<MqttTlsFiles>) -> MqttOptions {
    let m = cfg.mqtt();
    let mut o = MqttOptions::new(m.client_id(), m.host(), m.port());
    o.set_keep_alive(m.keepalive())
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(cfg.ingest().max_payload_bytes() + (64 << 10), 64 << 10)
        .set_request_channel_capacity(REQUEST_ROOM);
    if let Some(user) = m.username() {
        let password = m
            .password()
            .map(|p| String::from_utf8_lossy(p.expose()).into_owned())
            .unwrap_or_default();
        o.set_credentials(user, password);
    }
    if let Some(files) = tls {
        // Ignore the error: it only says a provider is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        o.set_transport(Transport::Tls(TlsConfiguration::Simple {
            ca: files.ca,
            alpn: None,
            client_auth: files.client_auth,
        }));
    }
    o
}

/// Sets how long the MQTT client waits for the broker: `timeout` bounds a CONNECT (the next
/// poll's, when not connected) and each write once connected.
///
/// Connected, it is the keepalive. A broker busy with many publishers reads our
/// acknowledgements late, not never: at city scale rumqttc's default of 5 s cut the
/// connection every minute or two, and each reconnection had the broker send its whole
/// in-flight window again. A dead broker is still found by the keepalive.
///
/// Connecting, it is `mqtt.connect_timeout_secs`, longer: Mosquitto 2.0.11 answers a CONNECT
/// only after walking every message in flight for the session, which took more than the
/// 120-s keepalive with millions in flight (benches/README.md, run 17). Each retry started the
/// walk anew, and the collector never got back in.
fn timeout_for(eventloop: &mut EventLoop, timeout: Duration) {
    let mut network = eventloop.network_options();
    network.set_connection_timeout(timeout.as_secs());
    eventloop.set_network_options(network);
}

/// Subscribes and ingests until `shutdown`; then commits and acknowledges what it holds,
/// disconnects and returns. Rows are written through `db`; committed sightings go to
/// `feed`. `tls`: the TLS files of an `mqtts://` broker.
pub async fn run(
    cfg: &Config,
    tls: Option<MqttTlsFiles>,
    db: clickhouse::Client,
    mut inventory: Inventory,
    feed: Feed,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), IngestError> {
    let (client, mut eventloop) = AsyncClient::new(options(cfg, tls), REQUEST_ROOM);
    let (acker, mut acks) = {
        let (tx, rx) = mpsc::unbounded_channel();
        (Acker(tx), rx)
    };
    // rumqttc's one connection timeout bounds both a CONNECT and, once connected, each write
    // (our acknowledgements); 5 s by default. It is `mqtt.connect_timeout` until the broker
    // answers a CONNECT and the keepalive from then on (`timeout_for`).
    let (keepalive, connect_timeout) = (cfg.mqtt().keepalive(), cfg.mqtt().connect_timeout());
    timeout_for(&mut eventloop, connect_timeout);
    let filters = cfg.mqtt().filters();
    let (tx, mut rx) = mpsc::channel::<Publish>(CHANNEL);
    // Not a child of `shutdown`: the MQTT task outlives the drain, to send its acknowledgements.
    let mqtt_stop = CancellationToken::new();
    let max_held = cfg.ingest().batch_max_rows();
    let silence = cfg.mqtt().silence_reconnect();
    let mut mqtt = tokio::spawn({
        let stop = mqtt_stop.clone();
        let metrics = metrics.clone();
        async move {
            let mut pending_subacks = 0;
            // False once the processor drains: what arrives then stays unacknowledged, and
            // the broker redelivers it.
            let mut forwarding = true;
            // Received, not yet handed to the processor: at most `max_held` messages and
            // HELD_MAX_BYTES, past which the loop stops polling. The bound is ours, not the
            // broker's in-flight limit: Mosquitto 2.0.11 lets more than
            // `max_inflight_messages` be in flight once acknowledgements flow (19,898 against
            // 2,000 in a test), and a city's collector held 3 M messages, GiBs. The
            // acknowledgements are written whether the loop polls or not ([`write_acks`]).
            let mut held: VecDeque<Publish> = VecDeque::new();
            let mut held_bytes = 0;
            // Acknowledgements the committer handed over, in arrival order (packet ids), not
            // yet written. This task alone writes them, and a new one wakes it. (Counted by
            // the committer instead, an acknowledgement could come while the loop waited on
            // the processor alone; a city's collector stopped for good after a reconnection,
            // both tasks waiting: benches/README.md, "Run 16".)
            let mut unsent: VecDeque<u16> = VecDeque::new();
            // The committer is done (the drain): the disconnect goes after the last
            // acknowledgement.
            let mut acks_open = true;
            let mut disconnecting = false;
            // Since when the broker has sent nothing while this task could read, subscribed,
            // with every message it sent acknowledged (so none of the broker's in-flight
            // window is in use: while ClickHouse is down the broker rightly waits).
            // Mosquitto 2.0.11 can stop sending to a session it still answers pings on: its
            // count of the session's messages in flight stays at the limit although the
            // collector acknowledged them all; a reconnection resets it (benches/README.md,
            // run 30).
            let mut quiet_since = Instant::now();
            let mut subscribed = false;
            // Since when nothing has come from the broker while connected and reading. rumqttc
            // gives a connection up when a keepalive finds its last PINGREQ unanswered; but
            // the PINGRESP can wait, behind the messages this task had no room to read (held
            // for a slow ClickHouse), past the next keepalive: a city's collector reconnected
            // so three times in one run, each a takeover after which Mosquitto 2.0.11 dropped
            // messages (benches/README.md, runs 29 and 30). So the client's check is cleared
            // before each poll, and the connection is given up here after 1.5 keepalives with
            // nothing heard while reading (the broker's own rule for a silent client).
            let mut unheard_since = Instant::now();
            let mut connected = false;
            // Messages handed on to the processor whose acknowledgement it has not handed back.
            let mut outstanding: u64 = 0;
            // Until when the socket is left to fill (GATHER): set when a read took all that
            // had come (fewer than rumqttc takes in one read), so that the next takes many.
            let mut gather_until: Option<Instant> = None;
            loop {
                let buffered = !eventloop.state.events.is_empty();
                let can_read = held.len() < max_held && held_bytes < HELD_MAX_BYTES;
                let armed = can_read && subscribed && forwarding && outstanding == 0;
                if !armed {
                    quiet_since = Instant::now();
                }
                let silent_until = silence.filter(|_| armed).map(|s| quiet_since + s);
                let reading = can_read || !unsent.is_empty() || disconnecting;
                if !(connected && reading) {
                    unheard_since = Instant::now();
                }
                let dead_at = (connected && reading).then(|| unheard_since + keepalive * 3 / 2);
                eventloop.state.await_pingresp = false;
                // (A broker that stops reading holds a write up to the keepalive: a stop
                // does not wait for it.)
                let written = if unsent.is_empty() {
                    Ok(())
                } else {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        w = write_acks(&mut eventloop, &mut unsent, keepalive) => w,
                    }
                };
                if !acks_open && unsent.is_empty() && !disconnecting {
                    disconnecting = client.try_disconnect().is_ok();
                }
                let event = if let Err(e) = written {
                    // What rumqttc does with a connection that failed.
                    eventloop.clean();
                    Err(e)
                } else {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        pkid = acks.recv(), if acks_open => {
                            match pkid {
                                Some(pkid) => {
                                    // And every one the committer has handed over since: written
                                    // together, in one write (a batch's, most often).
                                    unsent.push_back(pkid);
                                    let mut n = 1;
                                    while let Ok(pkid) = acks.try_recv() {
                                        unsent.push_back(pkid);
                                        n += 1;
                                    }
                                    outstanding = outstanding.saturating_sub(n);
                                }
                                None => acks_open = false,
                            }
                            continue;
                        }
                        permit = tx.reserve(), if forwarding && !held.is_empty() => {
                            match permit {
                                Ok(mut permit) => {
                                    // And as many more as the channel takes now: the
                                    // processor, woken once, finds them all.
                                    loop {
                                        let p = held.pop_front().expect("not empty");
                                        held_bytes -= p.payload.len();
                                        permit.send(p);
                                        match tx.try_reserve() {
                                            Ok(next) if !held.is_empty() => permit = next,
                                            _ => break,
                                        }
                                    }
                                }
                                Err(_) => {
                                    forwarding = false;
                                    held.clear();
                                    held_bytes = 0;
                                }
                            }
                            continue;
                        }
                        _ = async { tokio::time::sleep_until(silent_until.expect("guarded").into()).await },
                            if silent_until.is_some() && !disconnecting => {
                            warn!(
                                silent_secs = silence.expect("set").as_secs(),
                                "the broker sent nothing while subscribed; reconnecting (the session keeps what it holds)"
                            );
                            metrics.mqtt_silence_reconnects.inc();
                            // As after a lost connection.
                            eventloop.clean();
                            subscribed = false;
                            connected = false;
                            metrics.mqtt_subscribed.set(0);
                            timeout_for(&mut eventloop, connect_timeout);
                            continue;
                        }
                        _ = async { tokio::time::sleep_until(dead_at.expect("guarded").into()).await },
                            if dead_at.is_some() => {
                            warn!(
                                unheard_secs = (keepalive * 3 / 2).as_secs(),
                                "nothing came from the broker while reading; the connection is taken for dead"
                            );
                            // What rumqttc does with a connection that failed.
                            eventloop.clean();
                            Err(ConnectionError::NetworkTimeout)
                        }
                        _ = async { tokio::time::sleep_until(gather_until.expect("guarded").into()).await },
                            if reading && !buffered && gather_until.is_some() => {
                            gather_until = None;
                            continue;
                        }
                        e = eventloop.poll(), if reading && (buffered || gather_until.is_none()) => e,
                    }
                };
                if connected
                    && !buffered
                    && event.is_ok()
                    && eventloop.state.events.len() + 1 < READ_MAX
                {
                    gather_until = Some(Instant::now() + GATHER);
                }
                if let Ok(Event::Incoming(_)) = event {
                    unheard_since = Instant::now();
                }
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        connected = true;
                        timeout_for(&mut eventloop, keepalive);
                        info!(
                            session_present = ack.session_present,
                            "connected to the broker"
                        );
                        if ack.session_present {
                            subscribed = true;
                            metrics.mqtt_subscribed.set(1);
                        } else {
                            pending_subacks = filters.len();
                            for f in &filters {
                                if let Err(e) = client.try_subscribe(f.clone(), QoS::AtLeastOnce) {
                                    warn!(error = %e, filter = %f, "cannot subscribe");
                                }
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        if ack
                            .return_codes
                            .iter()
                            .any(|c| matches!(c, SubscribeReasonCode::Failure))
                        {
                            warn!("the broker refused a subscription");
                        } else {
                            pending_subacks = pending_subacks.saturating_sub(1);
                            if pending_subacks == 0 {
                                info!(filters = ?filters, "subscribed");
                                subscribed = true;
                                metrics.mqtt_subscribed.set(1);
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        metrics.messages_in.inc();
                        if forwarding {
                            held_bytes += p.payload.len();
                            held.push_back(p);
                            outstanding += 1;
                        }
                    }
                    // Written after every acknowledgement before it: done.
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(_) if !forwarding => break,
                    Err(e) => {
                        // Acknowledgements not written stay in `unsent`, for the next
                        // connection (the session's packet ids are the broker's until it has
                        // them); those written and lost with the connection, the broker
                        // sends the messages again.
                        subscribed = false;
                        connected = false;
                        timeout_for(&mut eventloop, connect_timeout);
                        metrics.mqtt_errors.inc();
                        metrics.mqtt_subscribed.set(0);
                        warn!(error = %e, "MQTT connection lost; reconnecting");
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            }
        }
    });

    let bounds = cfg.ingest().clone();
    let max_age = bounds.batch_max_age();
    let mut batch = Batch::default();
    let replay_db = db.clone();
    let mut committer = Committer {
        db,
        bridges: cfg.clickhouse().local_table("bridges").into(),
        acker,
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
        feed,
        inflight: None,
    };
    // A batch closes when full, or `batch_max_age` old. It also closes after a pause (no
    // message for IDLE): a broker that allows few messages in flight (Mosquitto's default is
    // 20) would otherwise pace ingest at that many per batch_max_age. But not while the batch
    // before it is being written: it would wait as long closed, and it takes the messages
    // that come meanwhile, so the slower ClickHouse writes, the larger the batches it gets.
    // Nor before it is a quarter of batch_max_age old: a pause in a trickle of messages (a
    // few sensors still sending) would close batches of a few rows, and ClickHouse pays for
    // every insert, and for every part it then merges.
    let mut last_message = Instant::now();
    let mut intake = Intake {
        metrics: metrics.clone(),
        rejections: RejectionLog::new(),
        newest_epoch: 0,
        held: DailyBudget::new(bounds.quarantine_max_bytes_per_day()),
        kept: DailyBudget::new(bounds.rejected_max_bytes_per_day()),
    };
    let mut taken = Taken::new();
    // Held messages a `requeue` asked for are replayed by one process of a cluster.
    let replays = cfg.timely().process() == 0;
    let mut replay_tick = tokio::time::interval(REPLAY_EVERY);
    replay_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let writing = committer.inflight.is_some();
        let deadline = batch.opened.map(|t| {
            if writing {
                t + max_age
            } else {
                (t + max_age).min((last_message + IDLE).max(t + max_age / 4))
            }
        });
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            done = async { committer.inflight.as_mut().expect("guarded").await }, if writing => {
                committer.inflight = None;
                done.map_err(IngestError::Commit)??;
            }
            _ = async { tokio::time::sleep_until(deadline.expect("guarded").into()).await }, if deadline.is_some() => {
                committer.start(std::mem::take(&mut batch)).await?;
            }
            msg = rx.recv() => {
                let Some(mut p) = msg else { break };
                // And the messages queued behind it, up to DRAIN (the other branches wait
                // meanwhile): one wakeup for a burst, not one for each message.
                for more in 1.. {
                    if p.dup {
                        metrics.redeliveries.inc();
                    }
                    if taken.again(&p.topic, &p.payload) {
                        metrics.repeats.inc();
                    } else {
                        let now = committer.feed.receive(&mut batch.ticket, None);
                        let topic = p.topic.clone();
                        let mut decoded = decode(&topic, &p.payload, now, inventory.sensors(), &bounds);
                        if matches!(decoded, Decoded::Rejected(Reason::UnknownSensor, _))
                            && inventory.reread_after_miss().await
                        {
                            // A sensor imported since the last read.
                            decoded = decode(&topic, &p.payload, now, inventory.sensors(), &bounds);
                        }
                        intake.add(&mut batch, (&topic, &p.payload, now), decoded, None);
                    }
                    batch.messages.push(p);
                    batch.opened.get_or_insert_with(Instant::now);
                    // Bounded in rows and in messages (an empty envelope makes no row).
                    if batch.rows().max(batch.messages.len()) >= bounds.batch_max_rows() {
                        committer.start(std::mem::take(&mut batch)).await?;
                    }
                    if more == DRAIN {
                        break;
                    }
                    match rx.try_recv() {
                        Ok(next) => p = next,
                        Err(_) => break,
                    }
                }
                last_message = Instant::now();
                inventory.refresh_if_due().await;
            }
            _ = replay_tick.tick(), if replays => {
                let held = match quarantine::requested(&replay_db).await {
                    Ok(held) => held,
                    Err(e) => {
                        warn!(error = %e, "cannot read the requested messages; trying again");
                        continue;
                    }
                };
                if held.is_empty() {
                    continue;
                }
                // The fix is in the inventory (or the configuration this process started with).
                inventory.reread().await;
                let n = held.len();
                for q in held {
                    committer.feed.receive(&mut batch.ticket, Some(q.received_ms));
                    let payload = &q.payload[..];
                    let decoded = decode(&q.topic, payload, q.received_ms, inventory.sensors(), &bounds);
                    if !intake.add(&mut batch, (&q.topic, payload, q.received_ms), decoded, Some(&q)) {
                        batch.quarantine.push(QuarantineRow {
                            state: quarantine::REPLAYED,
                            version: wall_clock_us().max(q.version + 1),
                            ..q
                        });
                    }
                }
                metrics.replayed.inc_by(n as u64);
                info!(messages = n, "replaying held messages a requeue asked for");
                committer.start(std::mem::take(&mut batch)).await?;
                if n as u64 == quarantine::REPLAY_BATCH {
                    replay_tick.reset_immediately();
                }
            }
        }
    }
    // Drain: what is already read is committed and acknowledged; what waits in the channel or
    // arrives now stays unacknowledged at the broker, which redelivers it.
    intake.rejections.flush();
    rx.close();
    committer.start(batch).await?;
    committer.finish().await?;
    // The MQTT task sends the disconnect after the last acknowledgement, and ends once it
    // is written.
    drop(committer);
    if tokio::time::timeout(Duration::from_secs(5), &mut mqtt)
        .await
        .is_err()
    {
        warn!("the broker did not take the disconnect within 5 s");
        mqtt_stop.cancel();
        let _ = mqtt.await;
    }
    Ok(())
}

/// Commits batches one at a time, in order, while the processor fills the next one: at most
/// two batches in memory, and acknowledgements in arrival order.
struct Committer {
    db: clickhouse::Client,
    /// Where the bridges' partitions are dropped (on a cluster, the shards' tables).
    bridges: Arc<str>,
    acker: Acker,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    feed: Feed,
    inflight: Option<tokio::task::JoinHandle<Result<(), IngestError>>>,
}

/// Hands the MQTT task the messages to acknowledge, in order.
#[derive(Clone)]
struct Acker(mpsc::UnboundedSender<u16>);

impl Acker {
    /// Fails once the MQTT task has ended.
    fn ack(&self, p: &Publish) -> Result<(), IngestError> {
        self.0.send(p.pkid).map_err(|_| IngestError::Mqtt)
    }
}

/// Writes the acknowledgements in `unsent` (QoS 1 packet ids, in arrival order) to the
/// broker, in one write, when connected; a write not done within `timeout` fails, as
/// rumqttc's own flushes do. Not through the client: its event loop writes each request it
/// takes in a write of its own, one system call an acknowledgement, a twentieth of the
/// collector's CPU at city scale (benches/README.md, run 34).
async fn write_acks(
    eventloop: &mut EventLoop,
    unsent: &mut VecDeque<u16>,
    timeout: Duration,
) -> Result<(), ConnectionError> {
    let Some(network) = eventloop.network.as_mut() else {
        return Ok(());
    };
    let write = async {
        while let Some(pkid) = unsent.pop_front() {
            network.write(Packet::PubAck(PubAck::new(pkid))).await?;
        }
        network.flush().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(written) => written.map_err(ConnectionError::MqttState),
        Err(_) => Err(ConnectionError::FlushTimeout),
    }
}

impl Committer {
    /// Waits for the previous commit, then starts committing `batch`.
    async fn start(&mut self, batch: Batch) -> Result<(), IngestError> {
        self.finish().await?;
        if batch.messages.is_empty() && batch.quarantine.is_empty() {
            return Ok(());
        }
        let (db, bridges, acker, metrics, shutdown, feed) = (
            self.db.clone(),
            self.bridges.clone(),
            self.acker.clone(),
            self.metrics.clone(),
            self.shutdown.clone(),
            self.feed.clone(),
        );
        self.inflight = Some(tokio::spawn(async move {
            commit(&db, &bridges, &acker, &feed, batch, &metrics, &shutdown).await
        }));
        Ok(())
    }

    /// Waits for the commit in flight, if any.
    async fn finish(&mut self) -> Result<(), IngestError> {
        match self.inflight.take() {
            Some(task) => task.await.map_err(IngestError::Commit)?,
            None => Ok(()),
        }
    }
}

/// Writes the batch (retrying the same rows until ClickHouse takes them), then acknowledges
/// its messages in order. On shutdown while ClickHouse is down, gives up without
/// acknowledging: the broker redelivers.
async fn commit(
    db: &clickhouse::Client,
    bridges: &str,
    acker: &Acker,
    feed: &Feed,
    mut batch: Batch,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(), IngestError> {
    let started = Instant::now();
    // In the table's order, ClickHouse writes the rows as they come instead of sorting them
    // (it checks): the rows of a message are already in order, so this costs the collector
    // less than it saves the server.
    SightingRow::sort_table_order(&mut batch.sightings);
    // One pair per device and epoch, however many of its sightings carried it.
    batch.bridges.sort_unstable();
    batch.bridges.dedup();
    let b = &batch;
    let written = ch::retry(
        &metrics.clickhouse_errors,
        shutdown,
        "sightings",
        b.rows(),
        || async move {
            ch::insert(db, "sightings", &b.sightings).await?;
            ch::insert(db, "batches", &b.batches).await?;
            ch::insert(db, "bridges", &b.bridges).await?;
            ch::insert(db, "sensor_status", &b.status).await?;
            ch::insert(db, "rejected", &b.rejected).await?;
            ch::insert(db, "quarantine", &b.quarantine).await?;
            match b.drop_bridges_before {
                Some(epoch) => drop_bridges_before(db, bridges, epoch).await,
                None => Ok(()),
            }
        },
    )
    .await;
    if !written {
        warn!("stopping with an uncommitted batch; the broker will redeliver it");
        return Ok(());
    }
    metrics.rows_written("sightings", batch.sightings.len());
    metrics.rows_written("batches", batch.batches.len());
    metrics.rows_written("bridges", batch.bridges.len());
    metrics.rows_written("sensor_status", batch.status.len());
    metrics.rows_written("rejected", batch.rejected.len());
    metrics.rows_written("quarantine", batch.quarantine.len());
    metrics.batch_committed(started.elapsed(), batch.sightings.len());
    if let Some(oldest) = batch.oldest_ms {
        metrics.event_lag(wire::Millis::now().0 - oldest);
    }
    // Committed: on to the stream stage, then acknowledged. (After a crash in between, the
    // next start reads the sightings back from the table.)
    feed.send(&batch.sightings, batch.ticket.take()).await?;
    for (i, p) in batch.messages.iter().enumerate() {
        if let Err(e) = acker.ack(p) {
            // The connection broke during the drain and the MQTT task has ended: the rows
            // are committed, and the broker redelivers these messages to the next session,
            // where (sensor, seq) de-duplicates them. Not a failure of the drain.
            if shutdown.is_cancelled() {
                warn!(
                    unacknowledged = batch.messages.len() - i,
                    "the MQTT connection closed during the drain; the broker redelivers \
                     these committed messages, de-duplicated by (sensor, seq)"
                );
                return Ok(());
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Drops the epoch bridges of epochs before `epoch` (their partitions): a pair links a key to
/// the next epoch's only while sightings of that next epoch may still come, so no stored
/// pair links keys more than one boundary apart (wire crate docs, "Epoch bridges").
async fn drop_bridges_before(
    db: &clickhouse::Client,
    table: &str,
    epoch: u32,
) -> Result<(), clickhouse::error::Error> {
    let old: Vec<u32> = db
        .query("SELECT DISTINCT epoch FROM bridges WHERE epoch < ?")
        .bind(epoch)
        .fetch_all()
        .await?;
    for e in old {
        // A partition id is bound like any value: the epoch is a number.
        db.query(&format!("ALTER TABLE {table} DROP PARTITION ?"))
            .bind(e)
            .execute()
            .await?;
        info!(
            epoch = e,
            "dropped the epoch's bridges: sightings two epochs later came"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::DailyBudget;

    #[test]
    fn a_daily_budget_refuses_what_does_not_fit_and_renews_each_day() {
        let mut b = DailyBudget::new(10);
        assert!(b.take(6, 100));
        assert!(!b.take(5, 100), "11 bytes do not fit in 10");
        assert!(b.take(4, 100));
        assert!(!b.take(1, 100));
        assert!(b.take(10, 101), "a new day");
        assert!(!DailyBudget::new(0).take(1, 100), "0 keeps nothing");
    }
}
