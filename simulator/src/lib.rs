//! The Footfall simulator: a seeded synthetic city that produces every input of the pipeline
//! (sensor captures or the agents' MQTT batches, the fleet inventory, proof-of-play logs,
//! campaigns, receipts, device-loyalty links) and the truth the pipeline should recover.
//!
//! Modules, in the order a day is simulated: [`world`] (the city, built once), [`activity`]
//! (what each person does), [`plays`] (what each board shows), [`radio`] (what the sensors
//! hear), [`sessions`] (frames to sightings and batches, as the agent does), [`pcap`] and
//! [`output`] (files), [`truth`]. Every random draw comes from a stream keyed by the seed and
//! the entity ([`rng`]), so the same seed and scenario give byte-identical files whatever the
//! number of threads.

pub mod activity;
pub mod output;
pub mod pcap;
pub mod plays;
pub mod radio;
pub mod rng;
pub mod scenario;
pub mod sessions;
pub mod stream;
pub mod truth;
pub mod world;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use wire::DeviceKey;

use activity::{Activity, DayOut, PersonState, Visit};
use output::Creating;
pub use output::Error;
use plays::Plays;
use radio::{Heard, Radio};
use scenario::{Mode, Scenario};
use sessions::Sessions;
use truth::{CampaignTruth, DeviceSighting};
use world::{World, DAY, HOUR};

/// The windows of the truth's people present per store (`store_occupancy.csv`): 15 min, the
/// collector's `occupancy` windows.
const OCCUPANCY_WINDOW: world::Micros = 15 * 60 * 1_000_000;

/// Per-sensor counts of what was written.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SensorCounts {
    pub probe_requests: u64,
    pub corrupt_probe_requests: u64,
    pub beacons: u64,
    pub acks: u64,
    pub sightings: u64,
    pub envelopes: u64,
}

impl SensorCounts {
    fn add(&mut self, o: &SensorCounts) {
        self.probe_requests += o.probe_requests;
        self.corrupt_probe_requests += o.corrupt_probe_requests;
        self.beacons += o.beacons;
        self.acks += o.acks;
        self.sightings += o.sightings;
        self.envelopes += o.envelopes;
    }
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub start: String,
    pub days: u32,
    pub mode: Mode,
    pub people: u64,
    pub devices: u64,
    pub devices_by_family: BTreeMap<&'static str, u64>,
    pub linkable_devices: u64,
    pub sites: u64,
    pub sensors: u64,
    pub probe_requests: u64,
    pub corrupt_probe_requests: u64,
    pub sightings: u64,
    pub envelopes: u64,
    pub plays: u64,
    /// Customer visits (staff shifts excluded), those caused by campaigns, and those in which
    /// the store's sensors captured at least one frame from the visitor's devices.
    pub visits: u64,
    pub extra_visits: u64,
    pub visits_seen: u64,
    /// visits_seen / visits: the share of the people entering that the store sensors see.
    pub store_capture: f64,
    pub passers_by: u64,
    pub receipts: u64,
    pub links: u64,
    pub campaigns: Vec<CampaignTruth>,
    /// Customer visits per store and UTC day (the day a visit starts in), the truth of the
    /// store-level estimate.
    pub store_days: Vec<StoreDay>,
}

/// One store's customer visits (staff shifts excluded) on one day: those that would have
/// happened without the campaigns, and those their effect caused.
#[derive(Debug, Serialize)]
pub struct StoreDay {
    pub store: String,
    /// `YYYY-MM-DD`.
    pub day: String,
    pub baseline: u64,
    pub extra: u64,
}

/// Progress of a run: days done of days, and sightings so far.
pub struct Progress {
    pub day: u32,
    pub days: u32,
    pub sightings: u64,
}

/// Generates the scenario into `out` (created if missing). `threads` (at least 1) only changes the speed: every draw is keyed by its entity.
pub fn generate(
    s: &Scenario,
    seed: u64,
    out: &Path,
    threads: usize,
    progress: &mut dyn FnMut(Progress),
) -> Result<Summary, Error> {
    for sub in ["inventory", "truth"] {
        std::fs::create_dir_all(out.join(sub)).creating(out)?;
    }
    let streams = match s.output.mode {
        Mode::Pcap => "captures",
        Mode::Envelopes => "envelopes",
    };
    std::fs::create_dir_all(out.join(streams))?;
    std::fs::write(out.join("scenario.toml"), toml::to_string(s)?)?;
    write_secret(&out.join("tenant.key"), &s.city.tenant_secret)?;

    let w = World::build(s, seed, threads.max(1));
    let plays = Plays::new(s, &w);
    output::inventory(s, &w, &out.join("inventory"))?;
    output::campaigns(s, &w, &out.join("campaigns.jsonl"))?;
    let mut plays_out = output::csv_file(
        &out.join("ad_plays.csv"),
        &[
            "board_id",
            "start",
            "end",
            "creative_id",
            "brand",
            "campaign_id",
        ],
    )?;

    let fingerprints: std::sync::Arc<[wire::Fingerprint]> = w
        .devices
        .iter()
        .map(|d| pcap::model_fingerprint(usize::from(d.family), usize::from(d.model)))
        .collect();
    let cx = stream::Ctx { s, w: &w, seed };
    let mut shards = stream::Shard::create_all(&cx, &out.join(streams), &fingerprints)?;

    let act = Activity {
        s,
        w: &w,
        plays: &plays,
    };
    let radio = Radio { s, w: &w };
    let people = w.people.len();
    let threads = threads.max(1);
    let chunk = people.div_ceil(threads).max(1);
    let mut states = vec![PersonState::default(); people];
    let mut visits: Vec<Visit> = Vec::new();
    let mut passes = Vec::new();
    let mut frontage = Vec::new();
    let mut exposures = Vec::new();
    let mut n_plays = 0;

    for d in 0..w.days {
        n_plays += output::plays_of_day(s, &w, &plays, d, &mut plays_out)?;
        // People, in parallel shards of consecutive ids.
        let results: Vec<(DayOut, Vec<Heard>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = states
                .chunks_mut(chunk)
                .enumerate()
                .map(|(k, shard)| {
                    let (act, radio) = (&act, &radio);
                    scope.spawn(move || {
                        let mut out = DayOut::default();
                        let mut frames = Vec::new();
                        for (j, state) in shard.iter_mut().enumerate() {
                            let pid = (k * chunk + j) as u32;
                            act.person_day(pid, d, state, &mut out);
                            let heard = radio.emit(pid, d, &out.presences, &mut frames);
                            for (p, n) in out.presences.iter().zip(heard) {
                                if let (Some(vi), true) = (p.visit, n > 0) {
                                    out.visits[vi].seen = true;
                                }
                            }
                            out.presences.clear();
                        }
                        (out, frames)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("simulation threads do not panic"))
                .collect()
        });
        let mut by_shard: Vec<Vec<Heard>> = vec![Vec::new(); stream::SHARDS];
        for (day_out, frames) in results {
            for h in frames {
                by_shard[h.sensor as usize % stream::SHARDS].push(h);
            }
            visits.extend(day_out.visits);
            passes.extend(day_out.passes);
            frontage.extend(day_out.frontage);
            exposures.extend(day_out.exposures);
        }
        // Sensors, in parallel shards.
        let (from, to) = (w.day_start(d), w.day_start(d + 1));
        let per_thread = stream::SHARDS.div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = shards
                .chunks_mut(per_thread)
                .zip(by_shard.chunks_mut(per_thread))
                .map(|(group, frames)| {
                    let cx = &cx;
                    scope.spawn(move || {
                        for (shard, f) in group.iter_mut().zip(frames) {
                            shard.day(cx, std::mem::take(f), from, to)?;
                        }
                        Ok::<_, Error>(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("sensor threads do not panic"))
        })?;
        progress(Progress {
            day: d + 1,
            days: w.days,
            sightings: shards
                .iter()
                .flat_map(|sh| &sh.counts)
                .map(|c| c.sightings)
                .sum(),
        });
    }
    let end_ms = w.day_start(w.days).div_euclid(1000) + DAY / 1000;
    let mut counts = vec![SensorCounts::default(); w.sensors.len()];
    let mut device_sightings: Vec<DeviceSighting> = Vec::new();
    let mut seen_keys: HashSet<(u32, DeviceKey)> = HashSet::new();
    let mut identities = output::csv_file(
        &out.join("truth/identities.csv"),
        &["device_id", "epoch", "device_key"],
    )?;
    for shard in &mut shards {
        shard.finish(&cx, end_ms)?;
        for (total, c) in counts.iter_mut().zip(&shard.counts) {
            total.add(c);
        }
        device_sightings.append(&mut shard.device_sightings);
        for &(device, epoch, key) in &shard.identities {
            if seen_keys.insert((device, key)) {
                identities.serialize((device, epoch, key.to_string()))?;
            }
        }
    }
    identities.flush()?;
    plays_out.flush()?;
    let mut sessions = Sessions::new(&w, &s.tenant_secret(), s, fingerprints);

    // Importer files that depend on the whole run.
    visits.sort_by_key(|v| (v.start, v.person, v.store));
    let receipts = output::receipts(s, &w, &visits, &out.join("receipts.csv"))?;
    let links = write_links(s, &w, &mut sessions, &out.join("links.csv"))?;

    // Truth.
    let campaigns = truth::campaigns(&truth::Inputs {
        s,
        w: &w,
        plays: &plays,
        passes: &passes,
        visits: &visits,
        exposures: &exposures,
        sightings: &device_sightings,
    });
    write_truth(
        s,
        &w,
        out,
        &visits,
        &passes,
        &exposures,
        &frontage,
        &counts,
        &campaigns,
        &mut sessions,
    )?;

    let customer = |v: &&Visit| w.people[v.person as usize].staff_at.is_none();
    let n_visits = visits.iter().filter(customer).count() as u64;
    let mut by_store_day: BTreeMap<(u32, i64), (u64, u64)> = BTreeMap::new();
    for v in visits.iter().filter(customer) {
        let counts = by_store_day
            .entry((v.store, v.start.div_euclid(DAY)))
            .or_default();
        if v.extra.is_some() {
            counts.1 += 1;
        } else {
            counts.0 += 1;
        }
    }
    let store_days = by_store_day
        .into_iter()
        .map(|((store, day), (baseline, extra))| StoreDay {
            store: w.sites[store as usize].id.clone(),
            day: chrono::DateTime::from_timestamp(day * 86_400, 0)
                .unwrap_or_default()
                .format("%Y-%m-%d")
                .to_string(),
            baseline,
            extra,
        })
        .collect();
    let seen = visits.iter().filter(customer).filter(|v| v.seen).count() as u64;
    let mut by_family = BTreeMap::new();
    for dev in &w.devices {
        *by_family.entry(dev.profile().name).or_insert(0) += 1;
    }
    let summary = Summary {
        seed,
        start: s.city.start.to_string(),
        days: s.city.days,
        mode: s.output.mode,
        people: w.people.len() as u64,
        devices: w.devices.len() as u64,
        devices_by_family: by_family,
        linkable_devices: w.devices.iter().filter(|d| d.linkable()).count() as u64,
        sites: w.sites.len() as u64,
        sensors: w.sensors.len() as u64,
        probe_requests: counts.iter().map(|c| c.probe_requests).sum(),
        corrupt_probe_requests: counts.iter().map(|c| c.corrupt_probe_requests).sum(),
        sightings: counts.iter().map(|c| c.sightings).sum(),
        envelopes: counts.iter().map(|c| c.envelopes).sum(),
        plays: n_plays,
        visits: n_visits,
        extra_visits: visits.iter().filter(|v| v.extra.is_some()).count() as u64,
        visits_seen: seen,
        store_capture: if n_visits > 0 {
            seen as f64 / n_visits as f64
        } else {
            0.0
        },
        passers_by: frontage.len() as u64,
        receipts,
        links,
        campaigns,
        store_days,
    };
    let mut f = output::create(&out.join("truth/summary.json"))?;
    serde_json::to_writer_pretty(&mut f, &summary)?;
    f.write_all(b"\n")?;
    f.flush()?;
    Ok(summary)
}

fn write_secret(path: &Path, secret: &str) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .creating(path)?;
    // The agents read the file's bytes as the key.
    f.write_all(secret.as_bytes())?;
    Ok(())
}

/// Device-loyalty links: each consenting member's globally addressed devices, per epoch.
fn write_links(
    s: &Scenario,
    w: &World,
    sessions: &mut Sessions,
    path: &Path,
) -> Result<u64, Error> {
    let first = sessions.epoch_of(w.start.div_euclid(1000));
    let last = sessions.epoch_of(w.day_start(w.days).div_euclid(1000) - 1);
    let mut f = output::csv_file(path, &["epoch", "device_key", "loyalty_id"])?;
    let mut n = 0;
    for (pid, p) in w.people.iter().enumerate() {
        if !p.consent {
            continue;
        }
        for (bi, br) in s.brands.iter().enumerate() {
            if !p.member[bi] {
                continue;
            }
            let loyalty = output::loyalty_id(w, &br.name, pid as u32);
            for &di in &p.devices {
                let dev = &w.devices[di as usize];
                if !dev.linkable() {
                    continue;
                }
                for epoch in first..=last {
                    f.serialize((
                        epoch,
                        sessions.key(epoch, &dev.global_mac).to_string(),
                        &loyalty,
                    ))?;
                    n += 1;
                }
            }
        }
    }
    f.flush()?;
    Ok(n)
}

#[allow(clippy::too_many_arguments)]
fn write_truth(
    s: &Scenario,
    w: &World,
    out: &Path,
    visits: &[Visit],
    passes: &[activity::CampaignPass],
    exposures: &[(u32, u16, world::Micros)],
    frontage: &[activity::Frontage],
    counts: &[SensorCounts],
    campaigns: &[CampaignTruth],
    sessions: &mut Sessions,
) -> Result<(), Error> {
    let t = out.join("truth");
    let site_id = |i: u32| w.sites[i as usize].id.as_str();

    let mut f = output::csv_file(
        &t.join("sensors.csv"),
        &[
            "sensor_id",
            "probe_requests",
            "corrupt_probe_requests",
            "beacons",
            "acks",
            "sightings",
            "envelopes",
        ],
    )?;
    for (sensor, c) in w.sensors.iter().zip(counts) {
        f.serialize((
            &sensor.id,
            c.probe_requests,
            c.corrupt_probe_requests,
            c.beacons,
            c.acks,
            c.sightings,
            c.envelopes,
        ))?;
    }
    f.flush()?;

    let first_epoch = sessions.epoch_of(w.start.div_euclid(1000));
    let last_epoch = sessions.epoch_of(w.day_start(w.days).div_euclid(1000) - 1);
    let mut f = output::csv_file(
        &t.join("devices.csv"),
        &[
            "device_id",
            "person_id",
            "family",
            "model",
            "linkable",
            "staff",
            "keys",
        ],
    )?;
    for (i, dev) in w.devices.iter().enumerate() {
        let keys = if dev.linkable() {
            (first_epoch..=last_epoch)
                .map(|e| format!("{e}:{}", sessions.key(e, &dev.global_mac)))
                .collect::<Vec<_>>()
                .join(";")
        } else {
            String::new()
        };
        f.serialize((
            i,
            dev.person,
            dev.profile().name,
            dev.model,
            dev.linkable(),
            w.people[dev.person as usize].staff_at.is_some(),
            keys,
        ))?;
    }
    f.flush()?;

    let rate_columns: Vec<String> = s
        .brands
        .iter()
        .map(|b| format!("rate_{}", b.name))
        .collect();
    let mut header = vec!["person_id", "employed", "staff_at", "devices"];
    header.extend(rate_columns.iter().map(String::as_str));
    let mut f = output::csv_file(&t.join("people.csv"), &header)?;
    for (pid, p) in w.people.iter().enumerate() {
        let mut record = vec![
            pid.to_string(),
            p.employed.to_string(),
            p.staff_at.map_or("", site_id).to_owned(),
            p.devices.len().to_string(),
        ];
        record.extend(p.rates.iter().map(|r| format!("{r:.6}")));
        f.write_record(&record)?;
    }
    f.flush()?;

    let mut sorted: Vec<&(u32, u16, world::Micros)> = exposures.iter().collect();
    sorted.sort_by_key(|e| (e.2, e.0, e.1));
    let mut f = output::csv_file(
        &t.join("exposures.csv"),
        &["person_id", "campaign_id", "first_exposure"],
    )?;
    for &&(pid, c, at) in &sorted {
        f.serialize((
            pid,
            &s.campaigns[usize::from(c)].id,
            output::ts(at).to_string(),
        ))?;
    }
    f.flush()?;

    let mut f = output::csv_file(
        &t.join("visits.csv"),
        &[
            "person_id",
            "store_id",
            "brand",
            "start",
            "end",
            "kind",
            "campaign_id",
            "seen",
            "receipt_id",
        ],
    )?;
    for v in visits {
        f.serialize((
            v.person,
            site_id(v.store),
            &s.brands[usize::from(v.brand)].name,
            output::ts(v.start).to_string(),
            output::ts(v.end).to_string(),
            if v.extra.is_some() {
                "extra"
            } else {
                "baseline"
            },
            v.extra
                .map_or("", |c| s.campaigns[usize::from(c)].id.as_str()),
            v.seen,
            v.receipt
                .map_or(String::new(), |r| format!("r-{:016x}", r.id)),
        ))?;
    }
    f.flush()?;

    let mut sorted: Vec<&activity::CampaignPass> = passes.iter().collect();
    sorted.sort_by_key(|p| (p.start, p.person, p.board, p.campaign));
    let mut f = output::csv_file(
        &t.join("passes.csv"),
        &[
            "person_id",
            "campaign_id",
            "board_id",
            "start",
            "end",
            "overlap_ms",
            "class",
        ],
    )?;
    for p in sorted {
        f.serialize((
            p.person,
            &s.campaigns[usize::from(p.campaign)].id,
            site_id(p.board),
            output::ts(p.start).to_string(),
            output::ts(p.end).to_string(),
            p.overlap / 1000,
            p.class.as_str(),
        ))?;
    }
    f.flush()?;

    // Per store and hour: visitors (customers arriving), those seen, and passers-by.
    let mut hours: BTreeMap<(u32, i64), [u64; 3]> = BTreeMap::new();
    for v in visits
        .iter()
        .filter(|v| w.people[v.person as usize].staff_at.is_none())
    {
        let e = hours
            .entry((v.store, v.start.div_euclid(HOUR)))
            .or_default();
        e[0] += 1;
        e[1] += u64::from(v.seen);
    }
    for p in frontage {
        hours.entry((p.store, p.at.div_euclid(HOUR))).or_default()[2] += 1;
    }
    let mut f = output::csv_file(
        &t.join("store_hours.csv"),
        &[
            "store_id",
            "hour",
            "visitors",
            "visitors_seen",
            "passers_by",
        ],
    )?;
    for ((store, hour), [v, seen, pb]) in hours {
        f.serialize((
            site_id(store),
            output::ts(hour * HOUR).to_string(),
            v,
            seen,
            pb,
        ))?;
    }
    f.flush()?;

    // Per store and 15-min window: people present (the mean over the window, staff included,
    // and customers only), and those of them whose devices a store sensor heard.
    let mut windows: BTreeMap<(u32, i64), [f64; 3]> = BTreeMap::new();
    for v in visits {
        let customer = w.people[v.person as usize].staff_at.is_none();
        for k in v.start.div_euclid(OCCUPANCY_WINDOW)..=v.end.div_euclid(OCCUPANCY_WINDOW) {
            let start = k * OCCUPANCY_WINDOW;
            let part = (v.end.min(start + OCCUPANCY_WINDOW) - v.start.max(start)) as f64
                / OCCUPANCY_WINDOW as f64;
            if part > 0.0 {
                let e = windows.entry((v.store, start)).or_default();
                e[0] += part;
                e[1] += if customer { part } else { 0.0 };
                e[2] += if v.seen { part } else { 0.0 };
            }
        }
    }
    let mut f = output::csv_file(
        &t.join("store_occupancy.csv"),
        &[
            "store_id",
            "window_start",
            "people",
            "customers",
            "people_seen",
        ],
    )?;
    for ((store, start), [people, customers, seen]) in windows {
        f.serialize((
            site_id(store),
            output::ts(start).to_string(),
            format!("{people:.3}"),
            format!("{customers:.3}"),
            format!("{seen:.3}"),
        ))?;
    }
    f.flush()?;

    for c in campaigns {
        let primary = c
            .windows
            .iter()
            .position(|&x| x == c.window_days)
            .expect("included");
        let people = t.join(format!("campaign-{}-people.csv", c.id));
        write_units(
            &people,
            &["person_id"],
            &c.people_units,
            primary,
            |_| None,
            &site_id,
        )?;
        let devices = t.join(format!("campaign-{}-devices.csv", c.id));
        let mut key = |u: &truth::Unit| {
            let dev = &w.devices[u.id as usize];
            let epoch = sessions.epoch_of(u.t0.div_euclid(1000));
            Some(sessions.key(epoch, &dev.global_mac).to_string())
        };
        write_units(
            &devices,
            &["device_id", "device_key"],
            &c.device_units,
            primary,
            &mut key,
            &site_id,
        )?;
    }
    Ok(())
}

/// A campaign's units with their arm and outcomes over the primary window (bit `primary`);
/// `extra` adds a column after the id (named in `id_columns`).
fn write_units<'a>(
    path: &Path,
    id_columns: &[&str],
    units: &[truth::Unit],
    primary: usize,
    mut extra: impl FnMut(&truth::Unit) -> Option<String>,
    site_id: &dyn Fn(u32) -> &'a str,
) -> Result<(), Error> {
    let bit = |mask: u32| mask >> primary & 1 == 1;
    let mut header = id_columns.to_vec();
    header.extend([
        "arm",
        "t0",
        "board_id",
        "full_follow_up",
        "converted",
        "converted_without_campaign",
    ]);
    let mut f = output::csv_file(path, &header)?;
    for u in units {
        let mut record = vec![u.id.to_string()];
        record.extend(extra(u));
        record.extend([
            arm(u.arm).to_owned(),
            output::ts(u.t0).to_string(),
            site_id(u.board).to_owned(),
            bit(u.full).to_string(),
            bit(u.y1).to_string(),
            bit(u.y0).to_string(),
        ]);
        f.write_record(&record)?;
    }
    f.flush()?;
    Ok(())
}

fn arm(a: truth::Arm) -> &'static str {
    match a {
        truth::Arm::Exposed => "exposed",
        truth::Arm::Control => "control",
    }
}
