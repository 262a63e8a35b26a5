//! One MQTT message to rows: sightings, a sensor status, or a rejection with its reason.
//! Pure, so every rule is unit-tested; nothing here panics on any input.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use wire::topic::Parsed;

use crate::ch::rows::{day_of, fnv64, BridgeRow, RejectedRow, SightingRow, StatusRow};
use crate::config::IngestConfig;
use crate::reason::Reason;

pub enum Decoded {
    /// The envelope's sightings, the epoch bridges they carry, and its sightings refused one
    /// by one (out of the clock bounds, inconsistent): a bad sighting loses only itself.
    Sightings(Vec<SightingRow>, Vec<BridgeRow>, Vec<(Reason, RejectedRow)>),
    Status(StatusRow),
    Rejected(Reason, RejectedRow),
}

/// Kept of a refused payload, in bytes.
pub const PAYLOAD_KEPT: usize = 4096;

fn reject(
    reason: Reason,
    detail: String,
    topic: &str,
    payload: &[u8],
    received_ms: i64,
) -> Decoded {
    Decoded::Rejected(
        reason,
        rejected_row(
            reason,
            detail,
            topic,
            payload,
            fnv64(&[payload]),
            received_ms,
        ),
    )
}

/// What the `rejected` table keeps of a refused payload (a message, or one sighting of it).
fn rejected_row(
    reason: Reason,
    detail: String,
    topic: &str,
    payload: &[u8],
    payload_hash: u64,
    received_ms: i64,
) -> RejectedRow {
    let kept = &payload[..payload.len().min(PAYLOAD_KEPT)];
    RejectedRow {
        day: day_of(received_ms),
        reason: reason.as_str().to_owned(),
        topic: topic.chars().take(512).collect(),
        payload_hash,
        received_ms,
        detail,
        payload: kept.to_vec(),
        payload_bytes: payload.len().min(u32::MAX as usize) as u32,
    }
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

fn unsupported(v: u32) -> String {
    format!(
        "contract version {v} (this collector reads {}-{})",
        wire::MIN_VERSION,
        wire::VERSION
    )
}

/// Tells a wrong version from other schema errors, for a payload that is not an envelope.
fn classify(payload: &str, err: &serde_json::Error) -> (Reason, String) {
    if err.is_syntax() || err.is_eof() {
        return (Reason::MalformedJson, err.to_string());
    }
    match serde_json::from_str::<VersionOnly>(payload) {
        Ok(v) if !wire::readable(v.v) => (Reason::UnsupportedVersion, unsupported(v.v)),
        _ => (Reason::SchemaMismatch, err.to_string()),
    }
}

/// Decodes one message. `inventory` maps sensor -> site.
pub fn decode(
    topic: &str,
    payload: &[u8],
    received_ms: i64,
    inventory: &HashMap<String, String>,
    bounds: &IngestConfig,
) -> Decoded {
    let rej = |reason, detail: String| reject(reason, detail, topic, payload, received_ms);
    if payload.len() > bounds.max_payload_bytes() {
        return rej(
            Reason::PayloadTooLarge,
            format!(
                "{} bytes, the limit is {}",
                payload.len(),
                bounds.max_payload_bytes()
            ),
        );
    }
    let Some(parsed) = wire::topic::parse(topic) else {
        return rej(
            Reason::BadTopic,
            "not footfall/v1/{site}/{sensor}/{sightings|status}".into(),
        );
    };
    let (t_site, t_sensor, is_status) = match parsed {
        Parsed::Sightings { site, sensor } => (site, sensor, false),
        Parsed::Status { site, sensor } => (site, sensor, true),
    };
    let check_origin = |sensor: &str, site: &str| -> Result<(), (Reason, String)> {
        if sensor != t_sensor || site != t_site {
            return Err((
                Reason::TopicMismatch,
                format!("payload says {site}/{sensor}, the topic {t_site}/{t_sensor}"),
            ));
        }
        match inventory.get(sensor) {
            None => Err((
                Reason::UnknownSensor,
                format!("sensor {sensor:?} is not in the fleet inventory"),
            )),
            Some(s) if s != site => Err((
                Reason::SiteMismatch,
                format!("sensor {sensor:?} belongs to site {s:?}, not {site:?}"),
            )),
            Some(_) => Ok(()),
        }
    };
    let future = bounds.max_future_ms();
    let past = bounds.max_age_ms();
    let sane = |ms: i64| ms <= received_ms + future && ms >= received_ms - past;
    if wire::is_binary(payload) {
        if is_status {
            return rej(
                Reason::MalformedBinary,
                "status messages are JSON, this one is binary".into(),
            );
        }
        return match wire::Envelope::from_binary(payload) {
            Ok(env) => sightings(env, &check_origin, payload, topic, received_ms, &sane),
            Err(wire::BinaryError::UnknownFormat(f)) => rej(
                Reason::UnsupportedVersion,
                format!(
                    "binary format {f} (this collector reads format {})",
                    wire::BINARY_FORMAT
                ),
            ),
            Err(e) => match wire::version_of(payload).filter(|&v| !wire::readable(v)) {
                Some(v) => rej(Reason::UnsupportedVersion, unsupported(v)),
                None => rej(Reason::MalformedBinary, e.to_string()),
            },
        };
    }
    // Checked once here, so the parser need not check every string (a third of its time).
    let text = match std::str::from_utf8(payload) {
        Ok(text) => text,
        Err(e) => return rej(Reason::MalformedJson, format!("not UTF-8: {e}")),
    };
    if is_status {
        let st: wire::Status = match serde_json::from_str(text) {
            Ok(s) => s,
            Err(e) => {
                let (r, d) = classify(text, &e);
                return rej(r, d);
            }
        };
        if !wire::readable(st.v) {
            return rej(Reason::UnsupportedVersion, unsupported(st.v));
        }
        if let Err((r, d)) = check_origin(&st.sensor, &st.site) {
            return rej(r, d);
        }
        // An offline status is stamped with its arrival: a Last Will is composed when the
        // sensor connects (its `at` may be weeks old) and sent by the broker when the
        // connection dies.
        let at_ms = if st.online { st.at.0 } else { received_ms };
        if !sane(at_ms) {
            return rej(
                Reason::ClockSkew,
                format!("status at {} is outside the clock bounds", st.at),
            );
        }
        return Decoded::Status(StatusRow {
            day: day_of(at_ms),
            at_ms,
            sensor: st.sensor,
            site: st.site,
            online: u8::from(st.online),
            uptime_secs: st.uptime_secs,
            frames_captured: st.frames_captured,
            frames_dropped: st.frames_dropped,
            frames_malformed: st.frames_malformed,
            spool_batches: st.spool_batches,
            spool_bytes: st.spool_bytes,
            spool_dropped_batches: st.spool_dropped_batches,
            config_version: st.config_version,
            clock_synced: u8::from(st.clock_synced),
            received_ms,
        });
    }
    match serde_json::from_str(text) {
        Ok(env) => sightings(env, &check_origin, payload, topic, received_ms, &sane),
        Err(e) => {
            let (r, d) = classify(text, &e);
            rej(r, d)
        }
    }
}

/// The rows of a decoded envelope, whichever its encoding: the contract's rules applied to
/// the whole message, then to each sighting.
fn sightings(
    env: wire::Envelope,
    check_origin: &impl Fn(&str, &str) -> Result<(), (Reason, String)>,
    payload: &[u8],
    topic: &str,
    received_ms: i64,
    sane: &impl Fn(i64) -> bool,
) -> Decoded {
    let rej = |reason, detail: String| reject(reason, detail, topic, payload, received_ms);
    if !wire::readable(env.v) {
        return rej(Reason::UnsupportedVersion, unsupported(env.v));
    }
    if let Err((r, d)) = check_origin(&env.sensor, &env.site) {
        return rej(r, d);
    }
    if env.sightings.len() > usize::from(u16::MAX) + 1 {
        return rej(
            Reason::InvalidSighting,
            format!("{} sightings in one batch", env.sightings.len()),
        );
    }
    if !sane(env.sent_at.0) {
        return rej(
            Reason::ClockSkew,
            format!("sent_at {} is outside the clock bounds", env.sent_at),
        );
    }
    let mut rows = Vec::with_capacity(env.sightings.len());
    let mut bridges = Vec::new();
    let (site, sensor): (Arc<str>, Arc<str>) = (env.site.into(), env.sensor.into());
    let mut refused = Vec::new();
    for (i, s) in env.sightings.iter().enumerate() {
        if let Err((reason, detail)) = check_sighting(s, env.v, sane) {
            // The sighting alone, re-encoded, under a hash of the message and its index (a
            // redelivered message refuses the same rows).
            let one = serde_json::to_vec(s).expect("a sighting serializes");
            let hash = fnv64(&[payload, &(i as u64).to_le_bytes()]);
            let detail = format!("sighting {i}: {detail}");
            refused.push((
                reason,
                rejected_row(reason, detail, topic, &one, hash, received_ms),
            ));
            continue;
        }
        if let Some(next) = s.next.filter(|n| n.0 != 0) {
            bridges.push(BridgeRow {
                epoch: env.epoch,
                device: s.device.0,
                next: next.0,
            });
        }
        rows.push(SightingRow {
            site: site.clone(),
            day: day_of(s.first_seen.0),
            sensor: sensor.clone(),
            seq: env.seq,
            idx: i as u16,
            epoch: env.epoch,
            device: s.device.0,
            link: s.link.map_or(0, |l| l.0),
            class: match s.class {
                wire::IdentityClass::Global => 0,
                wire::IdentityClass::Local => 1,
            },
            fingerprint: s.fingerprint.0,
            first_ms: s.first_seen.0,
            last_ms: s.last_seen.0,
            frames: s.frames,
            rssi_max: s.rssi_max,
            rssi_mean: s.rssi_mean,
            r#final: u8::from(s.is_final),
            sent_ms: env.sent_at.0,
            received_ms,
        });
    }
    Decoded::Sightings(rows, bridges, refused)
}

/// Why one sighting of a contract version `v` envelope is refused, if it is.
fn check_sighting(
    s: &wire::Sighting,
    v: u32,
    sane: &impl Fn(i64) -> bool,
) -> Result<(), (Reason, String)> {
    if !sane(s.first_seen.0) || !sane(s.last_seen.0) {
        return Err((
            Reason::ClockSkew,
            format!(
                "{}..{} is outside the clock bounds",
                s.first_seen, s.last_seen
            ),
        ));
    }
    if s.device.0 == 0 {
        return Err((
            Reason::InvalidSighting,
            "device key 0: removed by an opt-out purge".into(),
        ));
    }
    if s.last_seen < s.first_seen || s.frames == 0 || !s.rssi_mean.is_finite() {
        return Err((
            Reason::InvalidSighting,
            "last_seen before first_seen, no frames, or a bad RSSI".into(),
        ));
    }
    // Fields a contract version introduced, refused in an older envelope.
    for (since, present, what) in [
        (2, s.link.is_some(), "a link"),
        (3, s.next.is_some(), "a next key"),
    ] {
        if v < since && present {
            return Err((
                Reason::SchemaMismatch,
                format!("{what} in a contract version {v} envelope"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const NOW: i64 = 1_772_445_600_000; // 2026-03-02 10:00 UTC

    fn bounds() -> IngestConfig {
        Config::parse("").expect("defaults").ingest().clone()
    }

    fn inventory() -> HashMap<String, String> {
        [("s-1".to_string(), "store-1".to_string())].into()
    }

    fn envelope(v: u32, sensor: &str, site: &str, first: i64, last: i64) -> String {
        format!(
            r#"{{"v":{v},"sensor":"{sensor}","site":"{site}","seq":7,"epoch":437,"sent_at":"{sent}","sightings":[{{"device":"00000000000000ff","class":"local","fingerprint":"0000abcd","first_seen":"{f}","last_seen":"{l}","frames":3,"rssi_max":-60,"rssi_mean":-65.5,"final":true}}]}}"#,
            sent = wire::Millis(last),
            f = wire::Millis(first),
            l = wire::Millis(last)
        )
    }

    fn reason(topic: &str, payload: &str) -> Option<Reason> {
        match decode(topic, payload.as_bytes(), NOW, &inventory(), &bounds()) {
            Decoded::Rejected(r, row) => {
                assert_eq!(row.reason, r.as_str());
                assert!(!row.detail.is_empty());
                Some(r)
            }
            // A one-sighting envelope whose sighting is refused.
            Decoded::Sightings(rows, _, refused) if rows.is_empty() && !refused.is_empty() => {
                let (r, row) = &refused[0];
                assert_eq!(row.reason, r.as_str());
                assert!(row.detail.starts_with("sighting 0: "), "{}", row.detail);
                Some(*r)
            }
            _ => None,
        }
    }

    const TOPIC: &str = "footfall/v1/store-1/s-1/sightings";

    /// The rows of a good one-sighting envelope.
    fn good_rows() -> Vec<SightingRow> {
        let p = envelope(1, "s-1", "store-1", NOW - 60_000, NOW - 1000);
        let Decoded::Sightings(rows, _, _) =
            decode(TOPIC, p.as_bytes(), NOW, &inventory(), &bounds())
        else {
            panic!("accepted");
        };
        rows
    }

    #[test]
    fn a_good_envelope_becomes_rows() {
        let rows = good_rows();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.seq, r.idx, r.device, r.class, r.fingerprint),
            (7, 0, 255, 1, 0xabcd)
        );
        assert_eq!(r.day, day_of(NOW));
        assert_eq!(r.received_ms, NOW);
    }

    #[test]
    fn a_message_is_one_batch_on_the_day_it_was_sent() {
        // A sighting opened at 23:00 the day before, sent at 09:59:59.
        let p = envelope(2, "s-1", "store-1", NOW - 11 * 3_600_000, NOW - 1000);
        let Decoded::Sightings(rows, _, _) =
            decode(TOPIC, p.as_bytes(), NOW, &inventory(), &bounds())
        else {
            panic!("accepted");
        };
        assert_eq!(rows[0].day, day_of(NOW) - 1);
        let b = crate::ch::rows::BatchRow::of(&rows).expect("a batch");
        assert_eq!(
            (&*b.site, b.day, &*b.sensor, b.seq, b.sent_ms),
            ("store-1", day_of(NOW), "s-1", 7, NOW - 1000)
        );
        assert_eq!(crate::ch::rows::BatchRow::of(&[]), None);
    }

    #[test]
    fn batches_sort_in_the_tables_order() {
        // Rows of four messages, interleaved as they arrive; "a" < "a-1" < "a1" < "b" byte by
        // byte, as ClickHouse compares strings.
        let base = good_rows().remove(0);
        let mut rows = Vec::new();
        for (site, sensor, seq, day) in [
            ("b", "s-1", 3, 2),
            ("a-1", "s-2", 9, 1),
            ("a", "s-10", 4, 1),
            ("a", "s-9", 4, 1),
            ("a1", "s-3", 1, 1),
        ] {
            let (site, sensor): (Arc<str>, Arc<str>) = (site.into(), sensor.into());
            for idx in 0..3 {
                rows.push(SightingRow {
                    site: site.clone(),
                    day: day + idx / 2,
                    sensor: sensor.clone(),
                    seq,
                    idx,
                    ..base.clone()
                });
            }
        }
        rows.reverse();
        SightingRow::sort_table_order(&mut rows);
        let key = |r: &SightingRow| {
            (
                r.site.to_string(),
                r.day,
                r.sensor.to_string(),
                r.seq,
                r.idx,
            )
        };
        let got: Vec<_> = rows.iter().map(key).collect();
        let mut want = got.clone();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(got[0].0, "a");
        assert_eq!(got[0].2, "s-10");
        assert_eq!(got.last().map(|k| k.0.as_str()), Some("b"));
    }

    #[test]
    fn a_batch_sorts_as_its_rows_one_by_one_would_with_messages_twice_and_split_days() {
        // Messages of 1-6 rows (a row's day is its own: a message may span midnight; some
        // rows refused) from a few sites and sensors, in random order, some of them twice;
        // the reference is a stable sort of the rows by the table's key, so ties keep their
        // arrival order.
        let base = good_rows().remove(0);
        let names: Vec<Arc<str>> = ["a", "a-1", "a1", "b", "s-10", "s-9"]
            .into_iter()
            .map(Arc::from)
            .collect();
        let mut next = testkit::xorshift(0x2545_f491_4f6c_dd1d);
        let mut rows = Vec::new();
        let mut sent = Vec::new();
        for _ in 0..400 {
            let message = if !sent.is_empty() && next(8) == 0 {
                sent[next(sent.len() as u64) as usize]
            } else {
                let m = (next(3), 3 + next(3), next(8), next(6) + 1, next(4));
                sent.push(m);
                m
            };
            let (site, sensor, seq, n, split) = message;
            // Some rows refused: a message's rows need not start at idx 0.
            for idx in (0..n as u16).filter(|_| next(4) > 0) {
                rows.push(SightingRow {
                    site: names[site as usize].clone(),
                    sensor: names[sensor as usize].clone(),
                    seq,
                    idx,
                    day: 100 + u16::from(u64::from(idx) >= split),
                    received_ms: rows.len() as i64,
                    ..base.clone()
                });
            }
        }
        let key = |r: &SightingRow| {
            (
                r.site.as_bytes().to_vec(),
                r.day,
                r.sensor.as_bytes().to_vec(),
                r.seq,
                r.idx,
            )
        };
        let mut want = rows.clone();
        want.sort_by_key(key);
        let mut got = rows.clone();
        SightingRow::sort_table_order(&mut got);
        let arrival = |v: &[SightingRow]| v.iter().map(|r| r.received_ms).collect::<Vec<_>>();
        assert_eq!(arrival(&got), arrival(&want));
        // Without a message twice, the runs are sorted whole; the same order.
        let once: Vec<SightingRow> = {
            let mut seen = std::collections::HashSet::new();
            rows.into_iter().filter(|r| seen.insert(key(r))).collect()
        };
        let mut want = once.clone();
        want.sort_by_key(key);
        let mut got = once;
        SightingRow::sort_table_order(&mut got);
        assert_eq!(arrival(&got), arrival(&want));
    }

    #[test]
    fn links_are_kept_from_version_2_and_refused_in_version_1() {
        assert_eq!(good_rows()[0].link, 0, "version 1: no link");
        let linked = |v: u32| {
            envelope(v, "s-1", "store-1", NOW - 60_000, NOW - 1000).replace(
                r#""class":"local""#,
                r#""link":"00000000000000aa","class":"local""#,
            )
        };
        let Decoded::Sightings(rows, _, _) =
            decode(TOPIC, linked(2).as_bytes(), NOW, &inventory(), &bounds())
        else {
            panic!("accepted");
        };
        assert_eq!(rows[0].link, 0xaa);
        assert_eq!(reason(TOPIC, &linked(1)), Some(Reason::SchemaMismatch));
        let unlinked = envelope(2, "s-1", "store-1", NOW - 60_000, NOW - 1000);
        assert_eq!(
            reason(TOPIC, &unlinked),
            None,
            "a version 2 sighting may lack one"
        );
    }

    #[test]
    fn next_keys_become_bridges_from_version_3_and_are_refused_before() {
        let bridged = |v: u32| {
            envelope(v, "s-1", "store-1", NOW - 60_000, NOW - 1000).replace(
                r#""class":"local""#,
                r#""link":"00000000000000aa","next":"00000000000000bb","class":"local""#,
            )
        };
        let Decoded::Sightings(rows, bridges, _) =
            decode(TOPIC, bridged(3).as_bytes(), NOW, &inventory(), &bounds())
        else {
            panic!("accepted");
        };
        assert_eq!(rows.len(), 1);
        assert_eq!(
            bridges,
            [BridgeRow {
                epoch: 437,
                device: 0xff,
                next: 0xbb
            }]
        );
        assert_eq!(reason(TOPIC, &bridged(2)), Some(Reason::SchemaMismatch));
        let Decoded::Sightings(_, none, _) = decode(
            TOPIC,
            envelope(3, "s-1", "store-1", NOW - 60_000, NOW - 1000).as_bytes(),
            NOW,
            &inventory(),
            &bounds(),
        ) else {
            panic!("accepted");
        };
        assert!(none.is_empty(), "outside the bridge: no pair");
    }

    #[test]
    fn a_bad_sighting_is_refused_alone_and_the_others_kept() {
        let one = envelope(1, "s-1", "store-1", NOW - 60_000, NOW - 1000);
        let at = one.find("[{").expect("sightings") + 1;
        let sighting = &one[at..one.len() - 2];
        let bad = sighting.replace("\"frames\":3", "\"frames\":0");
        let three = format!("{}{sighting},{bad},{sighting}]}}", &one[..at]);
        let decoded = || decode(TOPIC, three.as_bytes(), NOW, &inventory(), &bounds());
        let Decoded::Sightings(rows, _, refused) = decoded() else {
            panic!("the envelope is accepted");
        };
        assert_eq!(rows.iter().map(|r| r.idx).collect::<Vec<_>>(), [0, 2]);
        assert_eq!(refused.len(), 1);
        let (reason, row) = &refused[0];
        assert_eq!(*reason, Reason::InvalidSighting);
        assert!(row.detail.starts_with("sighting 1: "), "{}", row.detail);
        let kept: wire::Sighting = serde_json::from_slice(&row.payload).expect("the sighting");
        assert_eq!(kept.frames, 0, "the refused sighting itself is kept");
        let Decoded::Sightings(_, _, again) = decoded() else {
            panic!("accepted");
        };
        assert_eq!(
            again[0].1.payload_hash, row.payload_hash,
            "a redelivery: the same row"
        );
    }

    #[test]
    fn every_rule_has_its_reason() {
        let ok = envelope(1, "s-1", "store-1", NOW - 60_000, NOW - 1000);
        assert_eq!(reason(TOPIC, &ok), None);
        assert_eq!(reason(TOPIC, "{\"v\":1,"), Some(Reason::MalformedJson));
        assert_eq!(reason(TOPIC, "not json"), Some(Reason::MalformedJson));
        assert_eq!(
            reason(TOPIC, &envelope(4, "s-1", "store-1", NOW - 60_000, NOW)),
            Some(Reason::UnsupportedVersion)
        );
        assert_eq!(
            reason(TOPIC, &envelope(0, "s-1", "store-1", NOW - 60_000, NOW)),
            Some(Reason::UnsupportedVersion)
        );
        assert_eq!(
            reason(TOPIC, r#"{"v":1,"sensor":"s-1"}"#),
            Some(Reason::SchemaMismatch)
        );
        assert_eq!(
            reason(TOPIC, &ok.replace("\"frames\"", "\"frame_count\"")),
            Some(Reason::SchemaMismatch)
        );
        assert_eq!(
            reason("footfall/v1/store-1/s-2/sightings", &ok),
            Some(Reason::TopicMismatch)
        );
        assert_eq!(
            reason(
                "footfall/v1/store-1/s-9/sightings",
                &envelope(1, "s-9", "store-1", NOW - 1, NOW)
            ),
            Some(Reason::UnknownSensor)
        );
        assert_eq!(
            reason(
                "footfall/v1/store-2/s-1/sightings",
                &envelope(1, "s-1", "store-2", NOW - 1, NOW)
            ),
            Some(Reason::SiteMismatch)
        );
        assert_eq!(
            reason(TOPIC, &envelope(1, "s-1", "store-1", NOW, NOW + 3_600_000)),
            Some(Reason::ClockSkew)
        );
        assert_eq!(
            reason(
                TOPIC,
                &envelope(1, "s-1", "store-1", NOW - 200 * 86_400_000, NOW)
            ),
            Some(Reason::ClockSkew)
        );
        assert_eq!(
            reason(TOPIC, &envelope(1, "s-1", "store-1", NOW, NOW - 5)),
            Some(Reason::InvalidSighting)
        );
        // A key an opt-out purge overwrote in a held message.
        assert_eq!(
            reason(TOPIC, &ok.replace("00000000000000ff", crate::purge::PURGED)),
            Some(Reason::InvalidSighting)
        );
        assert_eq!(
            reason("footfall/v1/store-1/s-1/other", &ok),
            Some(Reason::BadTopic)
        );
        let big = format!("{}{}", ok, " ".repeat(2 << 20));
        assert_eq!(reason(TOPIC, &big), Some(Reason::PayloadTooLarge));
    }

    #[test]
    fn an_offline_status_is_stamped_with_its_arrival() {
        let status = |online: bool, at: i64| {
            format!(
                r#"{{"v":3,"sensor":"s-1","site":"store-1","online":{online},"at":"{}","uptime_secs":0,"frames_captured":0,"frames_dropped":0,"frames_malformed":0,"spool_batches":0,"spool_bytes":0,"spool_dropped_batches":0,"config_version":1,"clock_synced":true}}"#,
                wire::Millis(at)
            )
        };
        let topic = "footfall/v1/store-1/s-1/status";
        let decode_at =
            |payload: String| match decode(topic, payload.as_bytes(), NOW, &inventory(), &bounds())
            {
                Decoded::Status(row) => Ok(row.at_ms),
                Decoded::Rejected(r, _) => Err(r),
                Decoded::Sightings(..) => panic!("a status"),
            };
        // A Last Will composed 90 days ago, when the sensor connected.
        let will = NOW - 90 * 86_400_000;
        assert_eq!(decode_at(status(false, will)), Ok(NOW));
        assert_eq!(decode_at(status(true, NOW - 5_000)), Ok(NOW - 5_000));
        assert_eq!(decode_at(status(true, will)), Err(Reason::ClockSkew));
    }

    #[test]
    fn a_payload_that_is_not_utf8_is_malformed_and_kept() {
        let mut p = envelope(1, "s-1", "store-1", NOW - 60_000, NOW - 1000).into_bytes();
        let at = p.len() - 20;
        p[at] = 0xff;
        let Decoded::Rejected(reason, row) = decode(TOPIC, &p, NOW, &inventory(), &bounds()) else {
            panic!("refused");
        };
        assert_eq!(reason, Reason::MalformedJson);
        assert!(row.detail.starts_with("not UTF-8"), "{}", row.detail);
        assert_eq!(row.payload_bytes as usize, p.len());
        assert_eq!(row.payload, p, "kept byte for byte");
    }

    fn binary(json: &str) -> Vec<u8> {
        serde_json::from_str::<wire::Envelope>(json)
            .expect("an envelope")
            .to_binary()
    }

    #[test]
    fn a_binary_envelope_gives_the_rows_its_json_gives() {
        let json = envelope(3, "s-1", "store-1", NOW - 60_000, NOW - 1000);
        let rows = |payload: &[u8]| match decode(TOPIC, payload, NOW, &inventory(), &bounds()) {
            Decoded::Sightings(rows, bridges, refused) if refused.is_empty() => (rows, bridges),
            _ => panic!("accepted"),
        };
        let (from_json, from_binary) = (rows(json.as_bytes()), rows(&binary(&json)));
        assert_eq!(from_binary.0.len(), 1);
        assert_eq!(from_binary, from_json);
    }

    #[test]
    fn a_binary_envelope_obeys_every_rule_json_does() {
        let reason_of = |topic: &str, payload: &[u8]| match decode(
            topic,
            payload,
            NOW,
            &inventory(),
            &bounds(),
        ) {
            Decoded::Rejected(r, row) => Some((r, row.detail)),
            Decoded::Sightings(rows, _, refused) if rows.is_empty() => {
                refused.into_iter().next().map(|(r, row)| (r, row.detail))
            }
            _ => None,
        };
        let ok = binary(&envelope(3, "s-1", "store-1", NOW - 60_000, NOW - 1000));
        assert_eq!(reason_of(TOPIC, &ok), None);
        let cases: [(&str, Vec<u8>, Reason, &str); 7] = [
            (
                TOPIC,
                ok[..ok.len() - 3].to_vec(),
                Reason::MalformedBinary,
                "truncated at byte",
            ),
            (
                "footfall/v1/store-1/s-1/status",
                ok.clone(),
                Reason::MalformedBinary,
                "status messages are JSON",
            ),
            (
                "footfall/v1/store-1/s-9/sightings",
                ok.clone(),
                Reason::TopicMismatch,
                "s-9",
            ),
            (
                TOPIC,
                binary(&envelope(3, "s-1", "store-1", NOW - 60_000, NOW - 90_000)),
                Reason::InvalidSighting,
                "sighting 0",
            ),
            (
                TOPIC,
                binary(&envelope(
                    3,
                    "s-1",
                    "store-1",
                    NOW - 60_000,
                    NOW + 86_400_000,
                )),
                Reason::ClockSkew,
                "clock bounds",
            ),
            (
                TOPIC,
                [&ok[..3], &[2], &ok[4..]].concat(),
                Reason::UnsupportedVersion,
                "binary format 2",
            ),
            (
                TOPIC,
                [&ok[..4], &[9], &ok[5..ok.len() - 1]].concat(),
                Reason::UnsupportedVersion,
                "contract version 9",
            ),
        ];
        for (topic, payload, reason, detail) in cases {
            let (r, d) = reason_of(topic, &payload).expect("refused");
            assert_eq!(r, reason, "{d}");
            assert!(d.contains(detail), "{d:?} should name {detail:?}");
        }
        let Decoded::Rejected(_, row) = decode(TOPIC, &ok[..40], NOW, &inventory(), &bounds())
        else {
            panic!("refused");
        };
        assert_eq!(
            row.payload,
            &ok[..40],
            "a binary payload is kept as received"
        );
    }

    #[test]
    fn a_refused_payload_is_kept_truncated_and_hashed_whole() {
        let big = "x".repeat(PAYLOAD_KEPT * 3);
        let Decoded::Rejected(_, row) = decode(TOPIC, big.as_bytes(), NOW, &inventory(), &bounds())
        else {
            panic!("refused");
        };
        assert_eq!(row.payload.len(), PAYLOAD_KEPT);
        assert_eq!(row.payload_bytes as usize, big.len());
        assert_ne!(row.payload_hash, fnv64(&[&big.as_bytes()[..PAYLOAD_KEPT]]));
    }
}
