//! Delivery: spool -> MQTT QoS 1, a batch leaving the spool only on its PUBACK.
//!
//! One task owns the rumqttc event loop and the in-flight window, so the mapping from
//! packet id to `seq` is exact: rumqttc announces each publish it writes as
//! `Outgoing::Publish(pkid)` in request order, and we only request while connected. On any
//! connection error the session is clean (rumqttc drops its queue on a new session), so
//! after every CONNACK delivery restarts from the oldest unacknowledged batch in the spool,
//! preceded by the batches the spool keeps after their acknowledgement (`mqtt.keep_acked_secs`:
//! a restarted broker may have lost them with its unsaved state).
//! Reconnects back off exponentially (0.5 s doubling to 60 s) with full jitter.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use firmware_config::{Config, Secret};
use rand::Rng;
use rumqttc::{
    AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport,
};
use tokio::sync::Notify;
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::spool::Spool;
use crate::telemetry::{SpoolFigures, StatusIdentity, Telemetry};
use crate::Error;

/// How the publisher ends.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    /// Cancelled when no more batches will be appended.
    pub producer_done: CancellationToken,
    /// After `producer_done`, how long to keep delivering; `None`: until the spool is empty.
    pub drain_timeout: Option<Duration>,
    /// Cancelled to stop at once (the spool keeps what is undelivered).
    pub stop: CancellationToken,
}

pub struct Publisher {
    options: MqttOptions,
    max_inflight: usize,
    status_interval: Duration,
    id: StatusIdentity,
    sightings_topic: String,
    status_topic: String,
}

/// Outcome of a publisher run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Delivered {
    pub acked_batches: u64,
    pub left_in_spool: usize,
    /// Acknowledged batches published again after a reconnect (`mqtt.keep_acked_secs`).
    pub resent_batches: u64,
}

impl Publisher {
    /// `password` is the loaded `mqtt.password_*` secret (UTF-8, checked at load).
    pub fn new(
        cfg: &Config,
        password: Option<&Secret>,
        max_batch_bytes: usize,
    ) -> Result<Publisher, Error> {
        let m = cfg.mqtt();
        let s = cfg.sensor();
        let id = StatusIdentity {
            sensor: s.id.clone(),
            site: s.site.clone(),
            config_version: cfg.version(),
        };
        let status_topic = wire::topic::status(&s.site, &s.id);
        let mut options = MqttOptions::new(m.client_id.clone(), m.host.clone(), m.port);
        options
            .set_keep_alive(m.keepalive)
            .set_clean_session(true)
            .set_max_packet_size(64 << 10, max_batch_bytes + 1024)
            .set_inflight(m.max_inflight.max(2))
            .set_request_channel_capacity(usize::from(m.max_inflight) + 8);
        let will = Telemetry::new(cfg.capture().clock_sync_file.clone()).status(
            &id,
            false,
            SpoolFigures::default(),
        );
        options.set_last_will(LastWill::new(
            status_topic.clone(),
            serde_json::to_vec(&will).expect("status serializes"),
            QoS::AtLeastOnce,
            true,
        ));
        if let Some(user) = &m.username {
            let password = password.map_or(String::new(), |p| {
                String::from_utf8_lossy(p.expose()).into_owned()
            });
            options.set_credentials(user.clone(), password);
        }
        if let Some(tls) = &m.tls {
            install_crypto_provider();
            let files = tls.read()?;
            options.set_transport(Transport::Tls(TlsConfiguration::Simple {
                ca: files.ca,
                alpn: None,
                client_auth: files.client_auth,
            }));
        }
        Ok(Publisher {
            options,
            max_inflight: usize::from(m.max_inflight),
            status_interval: m.status_interval,
            sightings_topic: wire::topic::sightings(&s.site, &s.id),
            status_topic,
            id,
        })
    }

    /// Delivers spooled batches until the lifecycle says to stop.
    pub async fn run(
        self,
        spool: Arc<Mutex<Spool>>,
        wake: Arc<Notify>,
        telemetry: Arc<Telemetry>,
        life: Lifecycle,
    ) -> Result<Delivered, Error> {
        let (client, mut eventloop) = AsyncClient::new(self.options.clone(), self.max_inflight + 8);
        let mut connected = false;
        let mut backoff = Duration::from_millis(500);
        // Data publishes requested but not yet given a packet id (None: a status message).
        let mut awaiting: VecDeque<Option<u64>> = VecDeque::new();
        let mut inflight: HashMap<u16, u64> = HashMap::new();
        let mut cursor: Option<u64> = None;
        let mut delivered = Delivered::default();
        let mut status_tick = tokio::time::interval(self.status_interval);
        let mut drain_deadline: Option<Instant> = None;
        let figures = |s: &Spool| SpoolFigures {
            batches: s.pending_batches() as u64,
            bytes: s.bytes(),
            dropped_batches: s.dropped_batches(),
        };

        loop {
            if life.producer_done.is_cancelled() {
                let empty = lock(&spool).pending_batches() == 0;
                if empty {
                    break;
                }
                if drain_deadline.is_none() {
                    drain_deadline = life.drain_timeout.map(|d| Instant::now() + d);
                }
            }
            if connected {
                while awaiting.iter().flatten().count() + inflight.len() < self.max_inflight {
                    let next = {
                        let s = lock(&spool);
                        s.next_pending(cursor).map(|seq| (seq, s.read(seq)))
                    };
                    let Some((seq, payload)) = next else { break };
                    let payload = payload?;
                    if client
                        .try_publish(&self.sightings_topic, QoS::AtLeastOnce, false, payload)
                        .is_err()
                    {
                        break;
                    }
                    awaiting.push_back(Some(seq));
                    cursor = Some(seq);
                }
            }
            let deadline = async {
                match drain_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            // The `interval` fsync policy: sync batches that would otherwise wait for the
            // next append.
            let sync_due = lock(&spool).sync_due_in();
            let sync_timer = async {
                match sync_due {
                    Some(d) => sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = eventloop.poll() => match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let resent = lock(&spool).resend_kept();
                        info!(broker = %self.broker(), resent, "connected to broker");
                        connected = true;
                        backoff = Duration::from_millis(500);
                        awaiting.clear();
                        inflight.clear();
                        cursor = None;
                        let status = telemetry.status(&self.id, true, figures(&lock(&spool)));
                        self.send_status(&client, &status, &mut awaiting);
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(Some(seq)) = awaiting.pop_front() {
                            inflight.insert(pkid, seq);
                        }
                    }
                    Ok(Event::Incoming(packet)) => {
                        let mut s = lock(&spool);
                        // Heard from the broker: what it acknowledged a keep window ago is in
                        // its saved state by now.
                        s.release_kept(std::time::Instant::now());
                        if let Packet::PubAck(ack) = packet {
                            if let Some(seq) = inflight.remove(&ack.pkid) {
                                s.ack(seq);
                                delivered.acked_batches += 1;
                                debug!(seq, "batch acknowledged");
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if connected {
                            warn!(error = %e, broker = %self.broker(), "lost broker connection");
                        } else {
                            debug!(error = %e, broker = %self.broker(), "broker unreachable");
                        }
                        connected = false;
                        awaiting.clear();
                        inflight.clear();
                        let jittered = backoff.mul_f64(rand::thread_rng().gen_range(0.5..=1.0));
                        tokio::select! {
                            _ = sleep(jittered) => {}
                            _ = life.stop.cancelled() => break,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(60));
                    }
                },
                _ = wake.notified() => {}
                _ = sync_timer => lock(&spool).sync(),
                _ = status_tick.tick(), if connected => {
                    let status = telemetry.status(&self.id, true, figures(&lock(&spool)));
                    self.send_status(&client, &status, &mut awaiting);
                }
                _ = life.producer_done.cancelled(), if !life.producer_done.is_cancelled() => {}
                _ = deadline => {
                    warn!(left = lock(&spool).pending_batches(), "drain timeout: undelivered batches stay in the spool");
                    break;
                }
                _ = life.stop.cancelled() => break,
            }
        }
        if connected {
            // A clean disconnect does not fire the Last Will: say offline ourselves.
            let status = telemetry.status(&self.id, false, figures(&lock(&spool)));
            self.send_status(&client, &status, &mut awaiting);
            let _ = client.try_disconnect();
            let until = Instant::now() + Duration::from_secs(2);
            while let Ok(Ok(ev)) = tokio::time::timeout_at(until, eventloop.poll()).await {
                if matches!(ev, Event::Outgoing(Outgoing::Disconnect)) {
                    break;
                }
            }
        }
        lock(&spool).sync();
        delivered.left_in_spool = lock(&spool).pending_batches();
        delivered.resent_batches = lock(&spool).resent_batches();
        Ok(delivered)
    }

    fn send_status(
        &self,
        client: &AsyncClient,
        status: &wire::Status,
        awaiting: &mut VecDeque<Option<u64>>,
    ) {
        let payload = serde_json::to_vec(status).expect("status serializes");
        if client
            .try_publish(&self.status_topic, QoS::AtLeastOnce, true, payload)
            .is_ok()
        {
            awaiting.push_back(None);
        }
    }

    fn broker(&self) -> String {
        let (host, port) = self.options.broker_address();
        format!("{host}:{port}")
    }
}

fn lock(spool: &Mutex<Spool>) -> std::sync::MutexGuard<'_, Spool> {
    spool
        .lock()
        .expect("spool lock: a panic while holding it already ended the agent")
}

fn install_crypto_provider() {
    // Ignore the error: it only says a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
