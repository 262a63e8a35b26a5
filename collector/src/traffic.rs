//! Store traffic per site and local hour, in people: visitors and passers-by, with the sensed
//! counts beside them and the visitors' dwell distribution.
//!
//! A **stay** is one device's sightings at the site, apart by at most the site kind's gap (as
//! in [`crate::visits`]), with one device counted once ([`crate::counting`]'s identities: a
//! global key, a link of rotating addresses, or an unlinked address), and fixtures (devices
//! heard all day) apart, with the runs of a model's phone that stayed for hours (a staff
//! phone whose links broke: [`counting::Fixtures`]). A stay counts in the local hour it starts in: as a **visitor** if it
//! meets the site's visit rule ([`SiteRule::visitor`]: opening hours, minimum dwell, signal),
//! else as a **passer-by**.
//!
//! People = stays x the calibration's people per device, divided by the site's capture rate
//! when one was measured (stores hear 40-45 % of their visitors: an uncorrected count is
//! the visitors whose phones were heard, and the row says which it is).
//!
//! An hour is decided by the sightings from `gap` before it (did a stay begin before the
//! hour?) to [`FOLLOW_MS`] plus `gap` after it: a stay that lasts longer is in the over-60-min
//! bucket whatever follows, and its signal is judged on what was heard until then. So an hour
//! is final once the watermark has passed that end, and the stream stage and an offline run
//! over the same sightings give the same rows.

use crate::counting::{self, Calibration, Identities, Identity, Sensed};
use crate::visits::{Rules, SiteRule};

pub const HOUR_MS: i64 = 3_600_000;
/// How long after its hour a stay is followed: the longest dwell bucket's lower end.
pub const FOLLOW_MS: i64 = 60 * 60_000;
/// Dwell buckets' upper ends, minutes: under 5, 5-20, 20-60, and over 60.
const DWELL_MINS: [i64; 3] = [5, 20, 60];

/// What decides a site's traffic.
#[derive(Clone, Debug)]
pub struct Setting {
    pub rule: SiteRule,
    /// Sightings of one device apart by at most this are one stay.
    pub gap_ms: i64,
    pub calibration: Calibration,
}

impl Setting {
    /// What decides `site`'s traffic under `rules`: its rule, gap and calibration.
    pub fn of(rules: &Rules, site: &str) -> Setting {
        let rule = rules.site(site);
        Setting {
            rule,
            gap_ms: rules.gap_ms(rule),
            calibration: rules.calibration(site),
        }
    }

    /// The end of the sightings that decide the hour starting at `hour_ms`.
    pub fn decided_by(&self, hour_ms: i64) -> i64 {
        hour_ms + HOUR_MS + FOLLOW_MS + self.gap_ms
    }
}

/// One local hour of a site.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hour {
    /// The hour's start, UTC ms (a whole hour on the site's clocks).
    pub start_ms: i64,
    /// People (see the module docs).
    pub visitors: f64,
    pub passers_by: f64,
    /// Stays counted.
    pub visitor_devices: u32,
    pub passer_by_devices: u32,
    /// Distinct device keys of sightings starting in the hour (fixtures' aside).
    pub addresses: u32,
    /// Stays of sightings without a link (each address its own device).
    pub unlinked_devices: u32,
    /// Fixtures heard in the hour.
    pub fixtures: u32,
    /// Visitor stays by dwell: under 5, 5-20, 20-60, over 60 min.
    pub dwell: [u32; 4],
}

/// The start (UTC ms) of the hour on the clocks of `tz` that holds `ms`. Every UTC offset
/// in use is a whole number of minutes, so the hour is an hour long.
pub fn hour_start(ms: i64, tz: chrono_tz::Tz) -> i64 {
    use chrono::Offset;
    use chrono::TimeZone;
    let offset_ms = chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            i64::from(
                tz.offset_from_utc_datetime(&t.naive_utc())
                    .fix()
                    .local_minus_utc(),
            )
        })
        .unwrap_or(0)
        * 1000;
    ms - (ms + offset_ms).rem_euclid(HOUR_MS)
}

/// A stay being built: start, last time, strongest frame until the hour is decided.
struct Stay {
    first_ms: i64,
    last_ms: i64,
    rssi_max: i8,
    decided_by: i64,
}

/// The site's hours from the one holding `from_ms` to the one holding `to_ms`, empty ones
/// included. `sightings` must hold every sighting that reaches from `gap` before the first
/// hour to [`Setting::decided_by`] the last (more is fine); `fixed` are the fixtures, and
/// `identities` say which sightings are one device.
pub fn hours_between<'a>(
    sightings: impl IntoIterator<Item = &'a Sensed>,
    fixed: &counting::Fixed,
    identities: &Identities,
    setting: &Setting,
    from_ms: i64,
    to_ms: i64,
) -> Vec<Hour> {
    let tz = setting.rule.tz;
    let first = hour_start(from_ms, tz);
    let mut hours: Vec<Hour> = (0..)
        .map(|k| first + k * HOUR_MS)
        .take_while(|&h| h <= to_ms)
        .map(|start_ms| Hour {
            start_ms,
            ..Hour::default()
        })
        .collect();
    if hours.is_empty() {
        return Vec::new();
    }
    // The local hours from `first` on are an hour each (every UTC offset in use is a whole
    // number of minutes, and changes by whole hours), so a time finds its hour on that grid
    // by arithmetic (`hour_of`: its index among them); times before or after the hours
    // asked for find a grid point outside them, which counts nothing.
    let hour_of = |ms: i64| (ms - first).div_euclid(HOUR_MS);
    let start_of = |ms: i64| first + hour_of(ms) * HOUR_MS;
    // (identity, start, end, strongest frame), sorted below: each device's sightings
    // together, in time order. Copied out of the sightings, so that neither the sort nor
    // the stays read them again.
    let mut spans: Vec<(Identity, i64, i64, i8)> = Vec::new();
    // (hour's index, device key) and (hour's index, fixture key) of the hours computed,
    // sorted and deduplicated below.
    let mut addresses: Vec<(usize, u64)> = Vec::new();
    let mut fixtures: Vec<(usize, u64)> = Vec::new();
    let last_hour = hours.len() as i64 - 1;
    for s in sightings {
        if let Some(key) = fixed.fixture_of(s).or_else(|| fixed.run_of(s)) {
            let heard = hour_of(s.first_ms).max(0)..=hour_of(s.last_ms).min(last_hour);
            fixtures.extend(heard.map(|k| (k as usize, key)));
        } else {
            if let Some(k) = usize::try_from(hour_of(s.first_ms))
                .ok()
                .filter(|&k| k < hours.len())
            {
                addresses.push((k, s.device));
            }
            spans.push((identities.identity(s), s.first_ms, s.last_ms, s.rssi_max));
        }
    }
    let count = |stay: &Stay, unlinked: bool, hours: &mut [Hour]| {
        let Some(hour) = usize::try_from(hour_of(stay.first_ms))
            .ok()
            .and_then(|k| hours.get_mut(k))
        else {
            return;
        };
        let dwell_ms = stay.last_ms - stay.first_ms;
        if setting.rule.visitor(stay.first_ms, dwell_ms, stay.rssi_max) {
            hour.visitor_devices += 1;
            let bucket = DWELL_MINS
                .iter()
                .position(|&m| dwell_ms < m * 60_000)
                .unwrap_or(DWELL_MINS.len());
            hour.dwell[bucket] += 1;
        } else {
            hour.passer_by_devices += 1;
        }
        hour.unlinked_devices += u32::from(unlinked);
    };
    spans.sort_unstable();
    for v in spans.chunk_by(|a, b| a.0 == b.0) {
        let unlinked = matches!(v[0].0, Identity::Unlinked(_));
        let mut stay: Option<Stay> = None;
        for &(_, first_ms, last_ms, rssi_max) in v {
            match stay.as_mut() {
                Some(st) if first_ms - st.last_ms <= setting.gap_ms => {
                    st.last_ms = st.last_ms.max(last_ms);
                    if first_ms <= st.decided_by {
                        st.rssi_max = st.rssi_max.max(rssi_max);
                    }
                }
                _ => {
                    if let Some(done) = stay.take() {
                        count(&done, unlinked, &mut hours);
                    }
                    stay = Some(Stay {
                        first_ms,
                        last_ms,
                        rssi_max,
                        decided_by: setting.decided_by(start_of(first_ms)),
                    });
                }
            }
        }
        if let Some(done) = stay {
            count(&done, unlinked, &mut hours);
        }
    }
    let scale =
        setting.calibration.people_per_device / setting.rule.capture_rate.map_or(1.0, f64::from);
    let n = hours.len();
    let (addresses, fixtures) = (per_hour(addresses, n), per_hour(fixtures, n));
    for ((hour, addresses), fixtures) in hours.iter_mut().zip(addresses).zip(fixtures) {
        hour.addresses = addresses;
        hour.fixtures = fixtures;
        hour.visitors = scale * f64::from(hour.visitor_devices);
        hour.passers_by = scale * f64::from(hour.passer_by_devices);
    }
    hours
}

/// Distinct keys in each of `n` hours, from (hour's index, key) pairs.
fn per_hour(mut pairs: Vec<(usize, u64)>, n: usize) -> Vec<u32> {
    pairs.sort_unstable();
    pairs.dedup();
    let mut counts = vec![0; n];
    for (k, _) in pairs {
        counts[k] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counting::tests::{s, MIN, T0};

    /// The hours, with the identities of the same sightings.
    fn hours_of(
        v: &[Sensed],
        fixed: &counting::Fixed,
        setting: &Setting,
        from_ms: i64,
        to_ms: i64,
    ) -> Vec<Hour> {
        hours_between(v, fixed, &Identities::of(v), setting, from_ms, to_ms)
    }

    fn store() -> Setting {
        Setting {
            rule: SiteRule {
                board: false,
                rssi_threshold_dbm: -70,
                min_dwell_secs: 180,
                open_hour: 8,
                close_hour: 20,
                tz: chrono_tz::UTC,
                capture_rate: None,
            },
            gap_ms: 10 * MIN,
            calibration: Calibration::uncalibrated(),
        }
    }

    #[test]
    fn stays_count_once_per_device_in_the_hour_they_start_by_the_visit_rule() {
        let v = [
            // A rotating phone: three addresses, one link, 8:05-8:17, strong: one visitor
            // (5-20 min), not three.
            s(1, false, 7, 5, 6, -50),
            s(2, false, 7, 10, 11, -55),
            s(3, false, 7, 16, 17, -52),
            // A global phone 8:50-10:20, strong: one visitor of the 8:00 hour, over 60 min.
            s(10, true, 10, 50, 70, -60),
            s(10, true, 10, 75, 140, -60),
            // Weak, long: a passer-by (the neighbour's shop).
            s(11, true, 11, 20, 40, -85),
            // Strong but brief: a passer-by.
            s(12, false, 12, 30, 31, -50),
            // Back after 40 min: a second stay, in the 9:00 hour, 3 min: a visitor under 5.
            s(12, false, 12, 71, 74, -50),
            // Without a link: an address of its own, flagged.
            s(13, false, 0, 62, 63, -80),
        ];
        let of =
            |v: &[Sensed]| hours_of(v, &counting::Fixed::default(), &store(), T0, T0 + HOUR_MS);
        let hours = of(&v);
        assert_eq!(hours.len(), 2);
        let (h8, h9) = (&hours[0], &hours[1]);
        assert_eq!(h8.start_ms, T0);
        assert_eq!((h8.visitor_devices, h8.passer_by_devices), (2, 2));
        assert_eq!(h8.dwell, [0, 1, 0, 1]);
        assert_eq!(h8.addresses, 6);
        assert_eq!(h8.visitors, 2.0);
        assert_eq!((h9.visitor_devices, h9.passer_by_devices), (1, 1));
        assert_eq!(h9.dwell, [1, 0, 0, 0]);
        assert_eq!(h9.unlinked_devices, 1);
        // Whatever the order the sightings come in.
        let mut reversed = v;
        reversed.reverse();
        assert_eq!(of(&reversed), hours);
    }

    #[test]
    fn people_are_scaled_by_the_calibration_and_corrected_for_capture() {
        let v = [s(1, true, 1, 5, 15, -50), s(2, true, 2, 5, 6, -50)];
        let mut setting = store();
        setting.calibration.people_per_device = 1.5;
        setting.rule.capture_rate = Some(0.5);
        let h = &hours_of(&v, &counting::Fixed::default(), &setting, T0, T0)[0];
        assert_eq!((h.visitors, h.passers_by), (3.0, 3.0));
    }

    #[test]
    fn hours_are_the_sites_local_hours() {
        // Kathmandu is UTC+5:45: its hours start at :15 past UTC hours.
        let mut setting = store();
        setting.rule.tz = chrono_tz::Asia::Kathmandu;
        setting.rule.open_hour = 0;
        setting.rule.close_hour = 24;
        let v = [s(1, true, 1, 10, 14, -50), s(2, true, 2, 20, 24, -50)];
        let hours = hours_of(&v, &counting::Fixed::default(), &setting, T0, T0 + 30 * MIN);
        let starts: Vec<i64> = hours.iter().map(|h| (h.start_ms - T0) / MIN).collect();
        assert_eq!(starts, [-45, 15]);
        assert_eq!(hours[0].visitor_devices, 1);
        assert_eq!(hours[1].visitor_devices, 1);
    }

    #[test]
    fn a_staff_phone_whose_links_broke_is_neither_visitor_nor_passer_by() {
        // A phone of model 9 in the store 8:00-13:00 that draws a new address and a new link
        // every 3 min, heard for a minute each; a visitor (model 0) at 10:00-10:15.
        let mut v: Vec<Sensed> = (0..100)
            .map(|k| Sensed {
                fingerprint: 9,
                ..s(
                    1000 + k,
                    false,
                    5000 + k,
                    3 * k as i64,
                    3 * k as i64 + 1,
                    -50,
                )
            })
            .collect();
        v.push(s(1, false, 7, 120, 135, -55));
        let fixed = counting::fixtures(&v, counting::FIXTURE_HOURS);
        let hours = hours_of(&v, &fixed, &store(), T0, T0 + 4 * HOUR_MS);
        let visitors: Vec<u32> = hours.iter().map(|h| h.visitor_devices).collect();
        assert_eq!(visitors, [0, 0, 1, 0, 0]);
        assert!(hours.iter().all(|h| h.passer_by_devices == 0), "{hours:?}");
        assert!(hours.iter().all(|h| h.fixtures == 1), "{hours:?}");
        // Without the run, each of its broken chains is a stay: twenty passers-by an hour.
        let without = hours_of(&v, &counting::Fixed::default(), &store(), T0, T0);
        assert!(without[0].visitor_devices + without[0].passer_by_devices >= 10);
    }

    #[test]
    fn a_fixture_counts_in_each_hour_asked_for_that_it_is_heard_in() {
        // A printer heard without a break from 7:30 to 11:10: five hours of its day. A phone
        // from 7:50, and one from 8:05.
        let v = [
            s(30, true, 30, -30, 190, -40),
            s(2, true, 2, -10, 5, -50),
            s(3, true, 3, 5, 6, -50),
        ];
        let fixed = counting::fixtures(&v, counting::FIXTURE_HOURS);
        let hours = hours_of(&v, &fixed, &store(), T0, T0 + 2 * HOUR_MS);
        let counted: Vec<(u32, u32)> = hours.iter().map(|h| (h.fixtures, h.addresses)).collect();
        assert_eq!(counted, [(1, 1), (1, 0), (1, 0)]);
    }

    #[test]
    fn fixtures_are_apart_and_an_hour_needs_only_its_reach() {
        // A lab PC heard in 4 hours of the day.
        let mut v: Vec<Sensed> = (0..4)
            .map(|h| s(20, true, 20, h * 60, h * 60 + 59, -40))
            .collect();
        let fixed = counting::fixtures(&v, counting::FIXTURE_HOURS);
        // A phone every 7 minutes all day long: one stay, started at 8:00.
        v.extend((0..100).map(|k| s(1, true, 1, 7 * k, 7 * k, -50)));
        let all = hours_of(&v, &fixed, &store(), T0, T0 + 9 * HOUR_MS);
        assert_eq!(all[0].fixtures, 1);
        assert_eq!((all[0].visitor_devices, all[0].passer_by_devices), (1, 0));
        assert!(all[1..]
            .iter()
            .all(|h| h.visitor_devices + h.passer_by_devices == 0));
        // Hour 10:00 from only the sightings that reach it: the same row.
        let setting = store();
        let h = T0 + 2 * HOUR_MS;
        let near: Vec<Sensed> = v
            .iter()
            .filter(|s| s.last_ms >= h - setting.gap_ms && s.first_ms <= setting.decided_by(h))
            .copied()
            .collect();
        assert_eq!(hours_of(&near, &fixed, &setting, h, h)[0], all[2]);
    }
}
