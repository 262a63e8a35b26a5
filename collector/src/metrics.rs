//! Prometheus metrics (prometheus-client), served in the OpenMetrics text format at
//! `GET /metrics` on `metrics.listen` (axum).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::reason::Reason;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: &'static str,
}

/// The collector's metrics. Names end in `_total` for counters (added by the encoder).
pub struct Metrics {
    pub messages_in: Counter,
    /// Messages the broker flagged as redelivered (QoS 1 DUP).
    pub redeliveries: Counter,
    /// Messages taken already in this session, received again: acknowledged, not decoded.
    pub repeats: Counter,
    pub mqtt_errors: Counter,
    /// Reconnections after the broker sent nothing for `mqtt.silence_reconnect_secs`.
    pub mqtt_silence_reconnects: Counter,
    pub clickhouse_errors: Counter,
    /// Time to commit a batch, in seconds.
    batch_seconds: Histogram,
    /// Sightings in a committed batch: ClickHouse's cost per row falls as they grow.
    batch_rows: Histogram,
    /// Now minus the oldest event time of the last committed batch, in seconds.
    event_lag_seconds: Gauge<f64, AtomicU64>,
    /// Sightings too late for the stream stage's state (behind its horizon).
    pub visits_too_late: Counter,
    /// Recomputes of the visits around sightings that came after the horizon.
    pub visits_recomputed: Counter,
    /// Sightings without a link (contract version 1 agents): each address counts as a device.
    pub sightings_unlinked: Counter,
    /// Stays the stream stage holds (all workers of this process).
    pub visit_stays: Gauge,
    /// Sightings the stream stage's counting holds (all workers of this process).
    pub occupancy_sightings: Gauge,
    /// The stream stage's watermark (event time), in seconds.
    watermark_seconds: Gauge<f64, AtomicU64>,
    /// The receive time the last checkpoint settled (Unix seconds).
    settled_seconds: Gauge<f64, AtomicU64>,
    /// 1 while connected with the subscriptions in place (acknowledged by the broker, or kept
    /// in the persistent session), else 0.
    pub mqtt_subscribed: Gauge,
    /// Messages held in the quarantine; refused ones that found its daily budget spent;
    /// held ones replayed on a `requeue`.
    pub quarantined: Counter,
    pub quarantine_full: Counter,
    /// Rejections whose payload was not kept: the day's budget was spent.
    pub rejected_unkept: Counter,
    pub replayed: Counter,
    rejected: Family<ReasonLabel, Counter>,
    rows: Family<TableLabel, Counter>,
    stage_refused: Family<StageLabel, Counter>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::default();
        let mut m = Metrics {
            messages_in: Counter::default(),
            redeliveries: Counter::default(),
            repeats: Counter::default(),
            mqtt_errors: Counter::default(),
            mqtt_silence_reconnects: Counter::default(),
            clickhouse_errors: Counter::default(),
            batch_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            batch_rows: Histogram::new(exponential_buckets(100.0, 2.0, 12)),
            event_lag_seconds: Gauge::default(),
            visits_too_late: Counter::default(),
            visits_recomputed: Counter::default(),
            sightings_unlinked: Counter::default(),
            visit_stays: Gauge::default(),
            occupancy_sightings: Gauge::default(),
            watermark_seconds: Gauge::default(),
            settled_seconds: Gauge::default(),
            mqtt_subscribed: Gauge::default(),
            quarantined: Counter::default(),
            quarantine_full: Counter::default(),
            rejected_unkept: Counter::default(),
            replayed: Counter::default(),
            rejected: Family::default(),
            rows: Family::default(),
            stage_refused: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "footfall_mqtt_messages",
            "MQTT messages received",
            m.messages_in.clone(),
        );
        registry.register(
            "footfall_mqtt_redeliveries",
            "Messages the broker flagged as redelivered",
            m.redeliveries.clone(),
        );
        registry.register(
            "footfall_mqtt_repeats",
            "Messages taken already in this session and received again (one taken but not yet \
             acknowledged when the connection broke, or a sensor's spool replayed): \
             acknowledged, not written again",
            m.repeats.clone(),
        );
        registry.register(
            "footfall_mqtt_errors",
            "MQTT connection errors",
            m.mqtt_errors.clone(),
        );
        registry.register(
            "footfall_mqtt_silence_reconnects",
            "Reconnections to the broker after it sent nothing for mqtt.silence_reconnect_secs \
             while the collector could read (a broker that stopped sending to the session)",
            m.mqtt_silence_reconnects.clone(),
        );
        registry.register(
            "footfall_clickhouse_errors",
            "Failed ClickHouse writes (retried)",
            m.clickhouse_errors.clone(),
        );
        registry.register(
            "footfall_visits_too_late",
            "Sightings that ended behind the stream stage's horizon (in sightings; their sites' visits are recomputed, not their occupancy)",
            m.visits_too_late.clone(),
        );
        registry.register(
            "footfall_visits_recomputed",
            "Recomputes of visits around sightings that came after the horizon",
            m.visits_recomputed.clone(),
        );
        registry.register(
            "footfall_sightings_unlinked",
            "Sightings that came without a link (contract version 1 agents): each address counts as a device",
            m.sightings_unlinked.clone(),
        );
        registry.register(
            "footfall_quarantined",
            "Refused messages held whole for a requeue after the fix",
            m.quarantined.clone(),
        );
        registry.register(
            "footfall_quarantine_full",
            "Refused messages not held: the day's quarantine budget was spent (their rejected row stays)",
            m.quarantine_full.clone(),
        );
        registry.register(
            "footfall_rejected_unkept",
            "Rejections kept without their payload: the day's budget (ingest.rejected_max_mib_per_day) was spent",
            m.rejected_unkept.clone(),
        );
        registry.register(
            "footfall_replayed",
            "Held messages replayed on a requeue",
            m.replayed.clone(),
        );
        registry.register(
            "footfall_rejected",
            "Messages rejected, by reason",
            m.rejected.clone(),
        );
        // Every reason from the start, at 0, so a dashboard sees the series before the first.
        for r in Reason::ALL {
            drop(
                m.rejected
                    .get_or_create(&ReasonLabel { reason: r.as_str() }),
            );
        }
        registry.register(
            "footfall_stage_refused",
            "Sightings a stage refused at a full site (visits.max_devices_per_site), by stage; they stay in the sightings table",
            m.stage_refused.clone(),
        );
        for stage in ["visits", "occupancy"] {
            drop(m.stage_refused.get_or_create(&StageLabel { stage }));
        }
        registry.register(
            "footfall_rows_written",
            "Rows committed, by table",
            m.rows.clone(),
        );
        registry.register(
            "footfall_batch_seconds",
            "Time to commit a batch",
            m.batch_seconds.clone(),
        );
        registry.register(
            "footfall_batch_rows",
            "Sightings in a committed batch",
            m.batch_rows.clone(),
        );
        registry.register(
            "footfall_event_lag_seconds",
            "Now minus the oldest event time of the last batch",
            m.event_lag_seconds.clone(),
        );
        registry.register(
            "footfall_visit_stays",
            "Stays held by the stream stage",
            m.visit_stays.clone(),
        );
        registry.register(
            "footfall_occupancy_sightings",
            "Sightings held by the stream stage's counting (a day or two behind the watermark)",
            m.occupancy_sightings.clone(),
        );
        registry.register(
            "footfall_watermark_seconds",
            "The stream stage's watermark (event time)",
            m.watermark_seconds.clone(),
        );
        registry.register(
            "footfall_settled_seconds",
            "The receive time (Unix seconds) before which every sighting is in the stream \
             stage's state or recomputed: a start recomputes the visits around the late \
             sightings received since",
            m.settled_seconds.clone(),
        );
        registry.register(
            "footfall_mqtt_subscribed",
            "1 while connected with the subscriptions in place",
            m.mqtt_subscribed.clone(),
        );
        m.registry = registry;
        m
    }
}

impl Metrics {
    pub fn rejected(&self, r: Reason) {
        self.rejected
            .get_or_create(&ReasonLabel { reason: r.as_str() })
            .inc();
    }

    /// Sightings `stage` refused at a full site.
    pub fn stage_refused(&self, stage: &'static str, n: u64) {
        if n > 0 {
            self.stage_refused
                .get_or_create(&StageLabel { stage })
                .inc_by(n);
        }
    }

    pub fn rows_written(&self, table: &'static str, n: usize) {
        self.rows
            .get_or_create(&TableLabel { table })
            .inc_by(n as u64);
    }

    pub fn batch_committed(&self, took: Duration, sightings: usize) {
        self.batch_seconds.observe(took.as_secs_f64());
        self.batch_rows.observe(sightings as f64);
    }

    pub fn event_lag(&self, ms: i64) {
        self.event_lag_seconds.set(ms as f64 / 1e3);
    }

    pub fn watermark(&self, ms: i64) {
        self.watermark_seconds.set(ms as f64 / 1e3);
    }

    pub fn settled(&self, ms: i64) {
        self.settled_seconds.set(ms as f64 / 1e3);
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        encode(&mut s, &self.registry).expect("writing to a String cannot fail");
        s
    }
}

/// Serves `GET /metrics` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let app = Router::new()
        .route("/metrics", get(exposition))
        .with_state(metrics);
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
}

async fn exposition(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
}

/// One worker's part of a gauge that sums what every worker of the process holds: each sets
/// its own count, and the gauge moves by the change.
pub struct Share {
    gauge: Gauge,
    mine: i64,
}

impl Share {
    pub fn of(gauge: &Gauge) -> Share {
        Share {
            gauge: gauge.clone(),
            mine: 0,
        }
    }

    pub fn set(&mut self, now: usize) {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        self.gauge.inc_by(now - self.mine);
        self.mine = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The series the scripts and dashboards read, under the names they read them by.
    #[test]
    fn renders_the_series_scrapers_read() {
        let m = Metrics::default();
        let text = m.render();
        assert!(
            text.contains("footfall_rejected_total{reason=\"clock_skew\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("\nfootfall_mqtt_subscribed 0\n"), "{text}");
        m.rejected(Reason::UnknownSensor);
        m.rows_written("sightings", 5);
        m.rows_written("sightings", 2);
        m.mqtt_subscribed.set(1);
        m.watermark(1_500);
        m.settled(2_500);
        m.batch_committed(Duration::from_millis(30), 7);
        let text = m.render();
        for want in [
            "footfall_rejected_total{reason=\"unknown_sensor\"} 1\n",
            "footfall_rows_written_total{table=\"sightings\"} 7\n",
            "\nfootfall_mqtt_subscribed 1\n",
            "\nfootfall_watermark_seconds 1.5\n",
            "\nfootfall_settled_seconds 2.5\n",
            "\nfootfall_batch_seconds_count 1\n",
            "\nfootfall_batch_rows_sum 7.0\n",
            "\nfootfall_batch_rows_bucket{le=\"100.0\"} 1\n",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
    }
}
