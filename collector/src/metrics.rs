//! Prometheus metrics: counters and gauges in atomics, served as text on `metrics.listen`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::reason::Reason;

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

#[derive(Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Relaxed);
    }

    pub fn add(&self, delta: i64) {
        self.0.fetch_add(delta, Relaxed);
    }
}

/// Sum and count of durations (a summary without quantiles).
#[derive(Default)]
pub struct Latency {
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Latency {
    pub fn observe(&self, d: Duration) {
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }
}

#[derive(Default)]
pub struct Metrics {
    pub messages_in: Counter,
    /// Messages the broker flagged as redelivered (QoS 1 DUP).
    pub redeliveries: Counter,
    pub mqtt_errors: Counter,
    pub clickhouse_errors: Counter,
    pub batch_latency: Latency,
    /// Now minus the oldest event time of the last committed batch.
    pub event_lag_ms: Gauge,
    /// Sightings too late for the stream stage's state (behind its horizon).
    pub visits_too_late: Counter,
    /// Stays the stream stage holds (all workers of this process).
    pub visit_stays: Gauge,
    /// The stream stage's watermark (event time, ms).
    pub watermark_ms: Gauge,
    /// 1 while connected with the subscriptions in place (acknowledged by the broker, or kept
    /// in the persistent session), else 0.
    pub mqtt_subscribed: Gauge,
    rejected: Mutex<BTreeMap<Reason, u64>>,
    rows: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn rejected(&self, r: Reason) {
        *self
            .rejected
            .lock()
            .expect("not poisoned")
            .entry(r)
            .or_default() += 1;
    }

    pub fn rows_written(&self, table: &'static str, n: usize) {
        *self
            .rows
            .lock()
            .expect("not poisoned")
            .entry(table)
            .or_default() += n as u64;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = write!(
                s,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
            );
        };
        counter(
            "footfall_mqtt_messages_total",
            "MQTT messages received.",
            self.messages_in.get(),
        );
        counter(
            "footfall_mqtt_redeliveries_total",
            "Messages the broker flagged as redelivered.",
            self.redeliveries.get(),
        );
        counter(
            "footfall_mqtt_errors_total",
            "MQTT connection errors.",
            self.mqtt_errors.get(),
        );
        counter(
            "footfall_clickhouse_errors_total",
            "Failed ClickHouse writes (retried).",
            self.clickhouse_errors.get(),
        );
        counter(
            "footfall_visits_too_late_total",
            "Sightings that ended behind the stream stage's horizon (kept in sightings, not in visits).",
            self.visits_too_late.get(),
        );
        let rejected = self.rejected.lock().expect("not poisoned");
        s.push_str("# HELP footfall_rejected_total Messages rejected, by reason.\n# TYPE footfall_rejected_total counter\n");
        for r in Reason::ALL {
            let _ = writeln!(
                s,
                "footfall_rejected_total{{reason=\"{}\"}} {}",
                r.as_str(),
                rejected.get(&r).unwrap_or(&0)
            );
        }
        s.push_str("# HELP footfall_rows_written_total Rows committed, by table.\n# TYPE footfall_rows_written_total counter\n");
        for (t, n) in self.rows.lock().expect("not poisoned").iter() {
            let _ = writeln!(s, "footfall_rows_written_total{{table=\"{t}\"}} {n}");
        }
        let _ = write!(
            s,
            "# HELP footfall_batch_seconds Time to commit a batch.\n# TYPE footfall_batch_seconds summary\n\
             footfall_batch_seconds_sum {}\nfootfall_batch_seconds_count {}\n\
             # HELP footfall_event_lag_seconds Now minus the oldest event time of the last batch.\n\
             # TYPE footfall_event_lag_seconds gauge\nfootfall_event_lag_seconds {}\n\
             # HELP footfall_visit_stays Stays held by the stream stage.\n\
             # TYPE footfall_visit_stays gauge\nfootfall_visit_stays {}\n\
             # HELP footfall_watermark_seconds The stream stage's watermark (event time).\n\
             # TYPE footfall_watermark_seconds gauge\nfootfall_watermark_seconds {}\n\
             # HELP footfall_mqtt_subscribed 1 while connected with the subscriptions in place.\n\
             # TYPE footfall_mqtt_subscribed gauge\nfootfall_mqtt_subscribed {}\n",
            self.batch_latency.sum_us.load(Relaxed) as f64 / 1e6,
            self.batch_latency.count.load(Relaxed),
            self.event_lag_ms.0.load(Relaxed) as f64 / 1e3,
            self.visit_stays.0.load(Relaxed),
            self.watermark_ms.0.load(Relaxed) as f64 / 1e3,
            self.mqtt_subscribed.0.load(Relaxed),
        );
        s
    }
}

/// Serves `GET /metrics` (any path) until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        let (mut sock, _) = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
        };
        let body = metrics.render();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
        });
    }
}
