//! People counting on real labelled days: every Fryza lab day in `../shared/testdata/pcaps/
//! fryza/`, replayed by `footfall-agent replay --out DIR/NAME.jsonl` (`benches/counting.sh`
//! does that first), through the collector's counting estimator ([`collector::counting`], the
//! code the collector runs), against the true number of people in the room.
//!
//! Truth per 15-min window (UTC, aligned to the epoch): the mean `occupancy` of the window's
//! frames (row i of the day's CSV is frame i of its pcap; the CSV's clock is local time, the
//! pcap's UTC, so the window comes from the pcap). `nan` cells are skipped; windows without a
//! labelled frame have no truth and are not scored.
//!
//! Scored: the estimator uncalibrated, and calibrated leave-one-day-out (fitted on the other
//! days, never on the day scored), beside four baselines computed from the CSV's anonymized
//! addresses on the same windows: distinct addresses, globally administered addresses, global
//! addresses minus the day's always-present ones (heard in 4 or more hours), and zero. MAE over
//! all windows and over occupied windows (>= 1 person), per position and in all; and how often
//! the 95 % interval covers the truth.
//!
//! Grouping: the Pintor captures (one labelled phone per file, 10 phones, each with up to
//! over a thousand random addresses), every phone's captures shifted to one start so all ten
//! are in the room at once (`overlay-pcap`), replayed the same way to `DIR/pintor/all.jsonl`:
//! how well the agent's links group one phone's addresses, as a V-measure over the addresses,
//! beside the probe fingerprint, one group per address, and two groupings that know the
//! phones: what a link that never joins two fingerprints can score at best, and what it can
//! score when it also ends after the link's horizon of silence. `benches/counting.sh` is
//! the command line.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::Context;
use collector::counting::{self, Calibration, Labelled, Sensed};
use testkit::FryzaDay;

const WINDOW_MS: i64 = 15 * 60_000;
const HOUR_MS: i64 = 3_600_000;

/// One labelled day at one position.
struct Day {
    name: String,
    position: String,
    sensed: Vec<Sensed>,
    truth: BTreeMap<i64, f64>,
    /// Per window: distinct addresses, global addresses, global minus the day's always-present.
    baselines: BTreeMap<i64, [f64; 3]>,
}

fn main() -> anyhow::Result<()> {
    let dir = std::path::absolute(
        std::env::args()
            .skip(1)
            .find(|a| !a.starts_with('-'))
            .context("usage: counting DIR (the agent's envelopes, DIR/NAME.jsonl)")?,
    )?;
    let days: Vec<Day> = testkit::fryza_days()
        .iter()
        .map(|n| day(&dir, n).with_context(|| format!("day {n}")))
        .collect::<anyhow::Result<_>>()?;

    let uncal = Calibration::uncalibrated();
    let mut scored: Vec<Scored> = Vec::new();
    for (i, d) in days.iter().enumerate() {
        let others: Vec<Labelled<'_>> = days
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, o)| (o.sensed.as_slice(), &o.truth))
            .collect();
        let cal = counting::fit(&others, WINDOW_MS)?;
        let ours = |c: &Calibration| -> BTreeMap<i64, (f64, f64, f64)> {
            counting::estimate(&d.sensed, WINDOW_MS, c)
                .into_iter()
                .map(|w| (w.start_ms, (w.people, w.lo, w.hi)))
                .collect()
        };
        let (u, c) = (ours(&uncal), ours(&cal));
        for (start, &truth) in &d.truth {
            let b = d.baselines.get(start).copied().unwrap_or_default();
            let get = |m: &BTreeMap<i64, (f64, f64, f64)>| {
                m.get(start).copied().unwrap_or((0.0, 0.0, 0.0))
            };
            scored.push(Scored {
                day: d.name.clone(),
                position: d.position.clone(),
                truth,
                estimates: [get(&u), get(&c)],
                baselines: [b[0], b[1], b[2], 0.0],
            });
        }
        let mae = |m: &BTreeMap<i64, (f64, f64, f64)>| {
            d.truth
                .iter()
                .map(|(start, t)| (m.get(start).map_or(0.0, |e| e.0) - t).abs())
                .sum::<f64>()
                / d.truth.len().max(1) as f64
        };
        eprintln!(
            "{}: {} labelled windows, MAE {:.2} uncalibrated, {:.2} calibrated; leave-one-day-out calibration: floor {} dBm, {:.2} people per device, fixtures in {} hours",
            d.name,
            d.truth.len(),
            mae(&u),
            mae(&c),
            cal.rssi_min_dbm,
            cal.people_per_device,
            cal.fixture_hours
        );
    }
    let mut table = summary(&scored);
    table.push_str(&pintor(&dir.join("pintor"))?);
    print!("{table}");
    fs::write(dir.join("summary.txt"), &table)?;
    Ok(())
}

struct Scored {
    day: String,
    position: String,
    truth: f64,
    /// (people, lo, hi): uncalibrated, calibrated leave-one-day-out.
    estimates: [(f64, f64, f64); 2],
    /// Distinct addresses, global, global minus always-present, zero.
    baselines: [f64; 4],
}

fn summary(scored: &[Scored]) -> String {
    let mut t = String::new();
    let names = [
        "ours, uncalibrated",
        "ours, calibrated (leave-one-day-out)",
        "distinct addresses",
        "global addresses",
        "global minus the day's always-present",
        "always zero",
    ];
    let groups: Vec<(String, Vec<&Scored>)> = {
        let mut g: Vec<(String, Vec<&Scored>)> = vec![("all days".into(), scored.iter().collect())];
        let mut positions: Vec<&String> = scored.iter().map(|s| &s.position).collect();
        positions.sort();
        positions.dedup();
        for p in positions {
            g.push((
                p.clone(),
                scored.iter().filter(|s| &s.position == p).collect(),
            ));
        }
        g
    };
    for (label, rows) in &groups {
        let occupied = rows.iter().filter(|s| s.truth >= 1.0).count();
        let days: HashSet<&String> = rows.iter().map(|s| &s.day).collect();
        let _ = writeln!(
            t,
            "\n{label}: {} days, {} windows ({occupied} occupied)\n{:<40} {:>8} {:>10} {:>9}",
            days.len(),
            rows.len(),
            "estimator",
            "MAE all",
            "MAE occ.",
            "coverage"
        );
        for (k, name) in names.iter().enumerate() {
            let value = |s: &Scored| {
                if k < 2 {
                    s.estimates[k].0
                } else {
                    s.baselines[k - 2]
                }
            };
            let mae = |f: &dyn Fn(&&&Scored) -> bool| {
                let v: Vec<f64> = rows
                    .iter()
                    .filter(f)
                    .map(|s| (value(s) - s.truth).abs())
                    .collect();
                v.iter().sum::<f64>() / v.len().max(1) as f64
            };
            let coverage = if k < 2 {
                let c = rows
                    .iter()
                    .filter(|s| s.estimates[k].1 <= s.truth && s.truth <= s.estimates[k].2)
                    .count();
                format!("{:.0} %", 100.0 * c as f64 / rows.len().max(1) as f64)
            } else {
                String::new()
            };
            let _ = writeln!(
                t,
                "{name:<40} {:>8.2} {:>10.2} {coverage:>9}",
                mae(&|_| true),
                mae(&|s| s.truth >= 1.0)
            );
        }
    }
    t
}

/// One day: the agent's envelopes (replayed by benches/counting.sh) and the labels.
fn day(dir: &Path, name: &str) -> anyhow::Result<Day> {
    let (_, sensed) = collector::offline::read_envelopes(&dir.join(format!("{name}.jsonl")))?;
    let labelled = FryzaDay::load(name);
    let mut addresses: BTreeMap<i64, (HashSet<&str>, HashSet<&str>)> = BTreeMap::new();
    let mut global_hours: HashMap<&str, HashSet<i64>> = HashMap::new();
    for f in &labelled.frames {
        let a = addresses
            .entry(f.ms.div_euclid(WINDOW_MS) * WINDOW_MS)
            .or_default();
        a.0.insert(&f.src);
        if f.global {
            a.1.insert(&f.src);
            global_hours
                .entry(&f.src)
                .or_default()
                .insert(f.ms.div_euclid(HOUR_MS));
        }
    }
    let always: HashSet<&str> = global_hours
        .into_iter()
        .filter(|(_, h)| h.len() >= usize::from(counting::FIXTURE_HOURS))
        .map(|(m, _)| m)
        .collect();
    let baselines = addresses
        .iter()
        .map(|(w, (all, global))| {
            let kept = global.iter().filter(|m| !always.contains(*m)).count();
            (*w, [all.len() as f64, global.len() as f64, kept as f64])
        })
        .collect();
    Ok(Day {
        name: name.to_owned(),
        position: name.split('_').take(2).collect::<Vec<_>>().join("_"),
        sensed,
        truth: labelled.truth(WINDOW_MS),
        baselines,
    })
}

/// How well the agent's links group the Pintor phones' addresses, all phones in one room
/// (`DIR/all.jsonl`; each phone's own replay `DIR/X.jsonl` says which addresses are its):
/// V-measure over the addresses, beside the probe fingerprint and one group per address.
fn pintor(dir: &Path) -> anyhow::Result<String> {
    let mut phone_of: HashMap<u64, char> = HashMap::new();
    for e in fs::read_dir(dir)? {
        let path = e?.path();
        let name = path.file_stem().and_then(|n| n.to_str()).unwrap_or("");
        if path.extension().is_some_and(|x| x == "jsonl") && name.len() == 1 {
            let phone = name.chars().next().context("a named file")?;
            for s in collector::offline::read_envelopes(&path)?.1 {
                phone_of.insert(s.device, phone);
            }
        }
    }
    // Per address: its phone, its link (the first it carried), its fingerprint, when heard.
    let mut addresses: HashMap<u64, Address> = HashMap::new();
    for s in collector::offline::read_envelopes(&dir.join("all.jsonl"))?.1 {
        let phone = *phone_of
            .get(&s.device)
            .context("an address of the overlay that no phone's replay has")?;
        let fingerprint = if s.global {
            s.device
        } else {
            1 << 63 | u64::from(s.fingerprint)
        };
        let a = addresses.entry(s.device).or_insert(Address {
            phone,
            link: s.link,
            fingerprint,
            first_ms: s.first_ms,
            last_ms: s.last_ms,
            session: 0,
        });
        a.first_ms = a.first_ms.min(s.first_ms);
        a.last_ms = a.last_ms.max(s.last_ms);
    }
    sessions(&mut addresses);
    let phones: HashSet<char> = addresses.values().map(|a| a.phone).collect();
    let mut t = format!(
        "\nPintor, every phone in one room: {} addresses of {} phones\n{:<40} {:>9} {:>12} {:>13} {:>10}\n",
        addresses.len(),
        phones.len(),
        "grouping",
        "V-measure",
        "homogeneity",
        "completeness",
        "groups"
    );
    // Groupings that know the phones: the best a link can be that never joins two
    // fingerprints (a chain continues only a chain of its fingerprint), and the best such a
    // link can be that also ends after the link's horizon of silence.
    let of_phone = |a: &Address| u64::from(a.phone).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    type Group<'a> = Box<dyn Fn(u64, &Address) -> u64 + 'a>;
    let groupings: [(&str, Group<'_>); 5] = [
        ("the agent's links", Box::new(|_, a| a.link)),
        ("probe fingerprint", Box::new(|_, a| a.fingerprint)),
        (
            "each phone's fingerprints apart",
            Box::new(|_, a| a.fingerprint ^ of_phone(a)),
        ),
        (
            "  and its silences past the horizon",
            Box::new(|_, a| a.fingerprint ^ of_phone(a) ^ a.session.rotate_left(32)),
        ),
        ("one per address", Box::new(|key, _| key)),
    ];
    for (name, group) in groupings {
        let p: Vec<(char, u64)> = addresses
            .iter()
            .map(|(k, a)| (a.phone, group(*k, a)))
            .collect();
        let (h, c) = homogeneity_completeness(&p);
        let groups: HashSet<u64> = p.iter().map(|(_, g)| *g).collect();
        let v = if h + c > 0.0 {
            2.0 * h * c / (h + c)
        } else {
            0.0
        };
        let _ = writeln!(
            t,
            "{name:<40} {v:>9.3} {h:>12.3} {c:>13.3} {:>10}",
            groups.len()
        );
    }
    Ok(t)
}

/// One address of the Pintor overlay.
struct Address {
    phone: char,
    link: u64,
    /// The probe fingerprint of a randomized address; a global address's own key.
    fingerprint: u64,
    first_ms: i64,
    last_ms: i64,
    /// Which of its phone's runs of one fingerprint it is in: a run ends where the phone
    /// was silent in that fingerprint for longer than the link's horizon.
    session: u64,
}

/// Numbers each phone's runs of one fingerprint ([`Address::session`]).
fn sessions(addresses: &mut HashMap<u64, Address>) {
    let mut by: BTreeMap<(char, u64), Vec<&mut Address>> = BTreeMap::new();
    for a in addresses.values_mut() {
        by.entry((a.phone, a.fingerprint)).or_default().push(a);
    }
    for run in by.values_mut() {
        run.sort_by_key(|a| a.first_ms);
        let (mut session, mut end) = (0, i64::MIN);
        for a in run.iter_mut() {
            if a.first_ms > end.saturating_add(device_id::link::HORIZON_MS) {
                session += 1;
            }
            end = end.max(a.last_ms);
            a.session = session;
        }
    }
}

/// Homogeneity and completeness (Rosenberg & Hirschberg 2007) of groups against classes.
fn homogeneity_completeness(items: &[(char, u64)]) -> (f64, f64) {
    let n = items.len() as f64;
    let mut joint: HashMap<(char, u64), f64> = HashMap::new();
    let mut classes: HashMap<char, f64> = HashMap::new();
    let mut groups: HashMap<u64, f64> = HashMap::new();
    for &(c, g) in items {
        *joint.entry((c, g)).or_default() += 1.0;
        *classes.entry(c).or_default() += 1.0;
        *groups.entry(g).or_default() += 1.0;
    }
    let entropy =
        |m: &dyn Fn() -> Vec<f64>| -> f64 { m().iter().map(|&k| -(k / n) * (k / n).ln()).sum() };
    let h_c = entropy(&|| classes.values().copied().collect());
    let h_g = entropy(&|| groups.values().copied().collect());
    // H(C|G) and H(G|C).
    let (mut h_c_g, mut h_g_c) = (0.0, 0.0);
    for (&(c, g), &k) in &joint {
        h_c_g -= (k / n) * (k / groups[&g]).ln();
        h_g_c -= (k / n) * (k / classes[&c]).ln();
    }
    let h = if h_c > 0.0 { 1.0 - h_c_g / h_c } else { 1.0 };
    let c = if h_g > 0.0 { 1.0 - h_g_c / h_g } else { 1.0 };
    (h, c)
}
