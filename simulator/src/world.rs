//! The city: sites and sensors, people with their anchors, routes and devices, device
//! families, and the billboards' creative loops. Built once from the scenario and the seed.

use crate::rng::{hash, Stream, Tag};
use crate::scenario::{Scenario, FAMILIES};

/// Microseconds since the Unix epoch, UTC.
pub type Micros = i64;

pub const SEC: Micros = 1_000_000;
pub const HOUR: Micros = 3600 * SEC;
pub const DAY: Micros = 24 * HOUR;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteKind {
    Store { brand: u16 },
    Billboard,
}

#[derive(Clone, Debug)]
pub struct Site {
    pub id: String,
    pub kind: SiteKind,
    pub x: f64,
    pub y: f64,
    /// Daily opening (stores) or playing (boards) hours, UTC.
    pub open_hour: u32,
    pub close_hour: u32,
    pub sensors: Vec<u32>,
}

#[derive(Clone, Debug)]
pub struct Sensor {
    pub id: String,
    pub site: u32,
}

/// How a device picks the transmitter address of its probe requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacPolicy {
    /// The burned-in, globally administered address.
    Global,
    /// A new locally administered address for every burst (Pintor B, E, J).
    PerBurst,
    /// A locally administered address kept for this long (Pintor A in some modes).
    Rotating { secs: i64 },
}

/// A device family: what its probes look like and how it picks addresses.
pub struct Family {
    pub name: &'static str,
    pub mac: MacPolicy,
    /// Mean frames per burst on the sensor's channel (one or more).
    pub frames_per_burst: f64,
    /// A new random sequence number with every address (iOS) or one running counter.
    pub seq_resets: bool,
    /// Vendor OUIs for the global address.
    pub ouis: &'static [[u8; 3]],
    /// Models: (HT capability info, extended capabilities), which set the fingerprint.
    pub models: &'static [([u8; 2], &'static [u8])],
}

pub const FAMILY_PROFILES: [Family; 4] = [
    Family {
        name: "ios",
        mac: MacPolicy::PerBurst,
        frames_per_burst: 2.0,
        seq_resets: true,
        ouis: &[[0x3c, 0x22, 0xfb], [0xf0, 0x18, 0x98]],
        models: &[
            (
                [0x2d, 0x40],
                &[0x04, 0x00, 0x0a, 0x02, 0x01, 0x40, 0x40, 0x80],
            ),
            (
                [0x6f, 0x40],
                &[0x04, 0x00, 0x0a, 0x02, 0x01, 0x40, 0x40, 0x81],
            ),
            (
                [0x63, 0x01],
                &[0x04, 0x00, 0x08, 0x82, 0x01, 0x40, 0x00, 0x40],
            ),
        ],
    },
    Family {
        name: "android-random",
        mac: MacPolicy::Rotating { secs: 300 },
        frames_per_burst: 3.0,
        seq_resets: false,
        ouis: &[[0x8c, 0xf5, 0xa3], [0x64, 0xcc, 0x2e]],
        models: &[
            ([0x21, 0x00], &[0x00, 0x00, 0x08, 0x80]),
            ([0xef, 0x01], &[0x04, 0x00, 0x4a, 0x02, 0x01, 0x40]),
        ],
    },
    Family {
        name: "android-global",
        mac: MacPolicy::Global,
        frames_per_burst: 3.0,
        seq_resets: false,
        ouis: &[[0x8c, 0xf5, 0xa3], [0x64, 0xcc, 0x2e], [0xa4, 0x50, 0x46]],
        models: &[
            ([0x2c, 0x01], &[0x00, 0x00, 0x08, 0x80]),
            (
                [0x6e, 0x11],
                &[0x04, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x40],
            ),
        ],
    },
    Family {
        name: "laptop",
        mac: MacPolicy::Global,
        frames_per_burst: 4.0,
        seq_resets: false,
        ouis: &[[0x00, 0x1b, 0x21], [0x3c, 0xa9, 0xf4]],
        models: &[(
            [0xef, 0x09],
            &[0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40],
        )],
    },
];

#[derive(Clone, Debug)]
pub struct Device {
    pub person: u32,
    pub family: u8,
    pub model: u8,
    /// The burned-in address (every device has one; only `Global` families probe with it).
    pub global_mac: [u8; 6],
    pub salt: u64,
}

impl Device {
    pub fn profile(&self) -> &'static Family {
        &FAMILY_PROFILES[usize::from(self.family)]
    }

    pub fn linkable(&self) -> bool {
        self.profile().mac == MacPolicy::Global
    }
}

/// A site near a route: how far along the route, and how close it comes.
#[derive(Clone, Copy, Debug)]
pub struct Near {
    pub site: u32,
    pub along_m: f32,
    pub closest_m: f32,
}

/// A straight route between two anchors, with the sites it passes within hearing range.
#[derive(Clone, Debug, Default)]
pub struct Route {
    pub length_m: f32,
    pub near: Vec<Near>,
}

#[derive(Clone, Debug)]
pub struct Person {
    pub home: (f64, f64),
    /// Route 0 is home -> work (empty for those without work); 1..=3 to personal places.
    pub routes: Vec<Route>,
    pub employed: bool,
    pub speed_mps: f32,
    pub devices: Vec<u32>,
    pub staff_at: Option<u32>,
    /// Two weekdays off (staff).
    pub days_off: [u32; 2],
    /// Baseline visits per day, by brand.
    pub rates: Vec<f32>,
    /// Loyalty member, by brand.
    pub member: Vec<bool>,
    pub consent: bool,
}

/// The city.
pub struct World {
    pub seed: u64,
    pub start: Micros,
    pub days: u32,
    pub sites: Vec<Site>,
    pub sensors: Vec<Sensor>,
    pub boards: Vec<u32>,
    /// Store site indices by brand.
    pub stores_of: Vec<Vec<u32>>,
    pub people: Vec<Person>,
    pub devices: Vec<Device>,
    /// Loop phase of each site (boards), microseconds.
    pub phase: Vec<Micros>,
    /// Furthest distance a sensor can hear a device (outdoor / indoor), metres.
    pub hear_m: f64,
}

fn clampf(v: f64, lo: f64, hi: f64) -> f64 {
    v.max(lo).min(hi)
}

impl World {
    pub fn build(s: &Scenario, seed: u64, threads: usize) -> World {
        let start = s
            .city
            .start
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp()
            * SEC;
        let (w, h) = (s.city.width_m, s.city.height_m);
        let centre = (w / 2.0, h / 2.0);
        let mut layout = Stream::new(seed, Tag::Layout, 0, 0);
        let mut sites = Vec::new();
        let mut sensors = Vec::new();
        let mut add_site =
            |kind: SiteKind, id: String, x: f64, y: f64, hours: (u32, u32), n: u32| {
                let idx = sites.len() as u32;
                let ids = (0..n)
                    .map(|k| {
                        sensors.push(Sensor {
                            id: format!("{id}-s{}", k + 1),
                            site: idx,
                        });
                        sensors.len() as u32 - 1
                    })
                    .collect();
                sites.push(Site {
                    id,
                    kind,
                    x,
                    y,
                    open_hour: hours.0,
                    close_hour: hours.1,
                    sensors: ids,
                });
                idx
            };
        let around = |r: &mut Stream, spread: f64| {
            (
                clampf(centre.0 + r.normal() * spread * w, 0.0, w),
                clampf(centre.1 + r.normal() * spread * h, 0.0, h),
            )
        };
        let b = &s.billboards;
        let boards: Vec<u32> = (0..b.count)
            .map(|i| {
                let (x, y) = around(&mut layout, 0.15);
                add_site(
                    SiteKind::Billboard,
                    format!("board-{:03}", i + 1),
                    x,
                    y,
                    (b.open_hour, b.close_hour),
                    b.sensors_per_board,
                )
            })
            .collect();
        let stores_of: Vec<Vec<u32>> = s
            .brands
            .iter()
            .enumerate()
            .map(|(bi, br)| {
                (0..br.stores)
                    .map(|i| {
                        let (x, y) = around(&mut layout, 0.22);
                        add_site(
                            SiteKind::Store { brand: bi as u16 },
                            format!("{}-{:03}", br.name, i + 1),
                            x,
                            y,
                            (br.open_hour, br.close_hour),
                            s.stores.sensors_per_store,
                        )
                    })
                    .collect()
            })
            .collect();
        let phase = (0..sites.len())
            .map(|_| layout.below((b.slot_secs * b.loop_slots) as u64) as Micros * SEC)
            .collect();

        let r = &s.radio;
        let hear = |n: f64| {
            10f64.powf(
                (r.tx_dbm_at_1m + 2.0 * r.shadowing_sigma_db - r.sensitivity_dbm) / (10.0 * n),
            )
        };
        let hear_m = hear(r.path_loss_outdoor)
            .max(s.stores.frontage_m)
            .min(400.0);

        let shares: Vec<f64> = FAMILIES
            .iter()
            .map(|f| s.devices.shares.get(*f).copied().unwrap_or(0.0))
            .collect();
        let staff_total: u32 = s
            .brands
            .iter()
            .map(|br| br.stores * br.staff_per_store)
            .sum();
        let staff_sites: Vec<u32> = s
            .brands
            .iter()
            .zip(&stores_of)
            .flat_map(|(br, stores)| {
                stores
                    .iter()
                    .flat_map(move |&st| std::iter::repeat_n(st, br.staff_per_store as usize))
            })
            .collect();
        let p = &s.population;
        let by_x = ByX::new(&sites);
        let make_person = |pid: u32| {
            let mut devices = Vec::new();
            let mut rs = Stream::new(seed, Tag::Person, u64::from(pid), 0);
            let home = (rs.range(0.0, w), rs.range(0.0, h));
            let staff_at = (pid < staff_total).then(|| staff_sites[pid as usize]);
            let employed = staff_at.is_some() || rs.chance(p.employed_share);
            let work = match staff_at {
                Some(st) => Some((sites[st as usize].x, sites[st as usize].y)),
                None => employed.then(|| around(&mut rs, p.work_spread)),
            };
            let pedestrian = rs.chance(p.pedestrian_share);
            let speed_mps = if pedestrian {
                rs.range(1.0, 1.6)
            } else {
                rs.range(5.0, 12.0)
            } as f32;
            let mut routes = vec![work
                .map(|to| route(&by_x, home, to, hear_m))
                .unwrap_or_default()];
            for _ in 0..3 {
                let to = if rs.chance(0.5) {
                    (
                        clampf(home.0 + rs.normal() * 0.15 * w, 0.0, w),
                        clampf(home.1 + rs.normal() * 0.15 * h, 0.0, h),
                    )
                } else {
                    around(&mut rs, 0.2)
                };
                routes.push(route(&by_x, home, to, hear_m));
            }
            // Within view of a board, a route follows the street in front of it.
            for near in routes.iter_mut().flat_map(|r| r.near.iter_mut()) {
                let board = sites[near.site as usize].kind == SiteKind::Billboard;
                if board && f64::from(near.closest_m) <= b.view_radius_m {
                    near.closest_m = rs.range(b.approach_m[0], b.approach_m[1]) as f32;
                }
            }
            let n_dev = rs.pick(&p.devices_per_person);
            let ids = (0..n_dev)
                .map(|_| {
                    let family = rs.pick(&shares) as u8;
                    let prof = &FAMILY_PROFILES[usize::from(family)];
                    let model = rs.below(prof.models.len() as u64) as u8;
                    let oui = prof.ouis[rs.below(prof.ouis.len() as u64) as usize];
                    let tail = rs.next_u64().to_be_bytes();
                    devices.push(Device {
                        person: pid,
                        family,
                        model,
                        global_mac: [oui[0], oui[1], oui[2], tail[0], tail[1], tail[2]],
                        salt: rs.next_u64(),
                    });
                    // Renumbered below, once every person's devices are known.
                    devices.len() as u32 - 1
                })
                .collect();
            let rates = s
                .brands
                .iter()
                .map(|br| {
                    let k = br.affinity_shape;
                    (rs.gamma(k, br.daily_visit_rate / k)).min(1.0) as f32
                })
                .collect();
            let member = s
                .brands
                .iter()
                .map(|_| rs.chance(p.loyalty_share))
                .collect();
            let first_off = rs.below(7) as u32;
            let person = Person {
                home,
                routes,
                employed,
                speed_mps,
                devices: ids,
                staff_at,
                days_off: [first_off, (first_off + 1 + rs.below(6) as u32) % 7],
                rates,
                member,
                consent: rs.chance(p.link_consent_share),
            };
            (person, devices)
        };
        // People in parallel chunks: each draws from its own stream, so the result does not
        // depend on the chunking.
        let chunk = (p.people as usize).div_ceil(threads.max(1)).max(1);
        let built: Vec<Vec<(Person, Vec<Device>)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..p.people as usize)
                .step_by(chunk)
                .map(|first| {
                    let make_person = &make_person;
                    let last = (first + chunk).min(p.people as usize);
                    scope.spawn(move || (first as u32..last as u32).map(make_person).collect())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("world threads do not panic"))
                .collect()
        });
        let mut people = Vec::with_capacity(p.people as usize);
        let mut devices = Vec::new();
        for (mut person, devs) in built.into_iter().flatten() {
            let base = devices.len() as u32;
            for id in &mut person.devices {
                *id += base;
            }
            devices.extend(devs);
            people.push(person);
        }
        World {
            seed,
            start,
            days: s.city.days,
            sites,
            sensors,
            boards,
            stores_of,
            people,
            devices,
            phase,
            hear_m,
        }
    }

    /// Midnight at the start of simulated day `d`.
    pub fn day_start(&self, d: u32) -> Micros {
        self.start + Micros::from(d) * DAY
    }

    /// 0 = Monday.
    pub fn weekday(&self, d: u32) -> u32 {
        // 1970-01-01 was a Thursday.
        ((self.day_start(d).div_euclid(DAY) + 3).rem_euclid(7)) as u32
    }

    /// A synthetic locally administered address for `device` at slot `slot`.
    pub fn local_mac(&self, device: u32, slot: u64) -> [u8; 6] {
        let salt = self.devices[device as usize].salt;
        let b = hash(&[self.seed, Tag::Mac as u64, salt, slot]).to_be_bytes();
        [(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]]
    }

    /// The store of `brand` a person at `home` visits: nearer stores more often.
    pub fn choose_store(&self, r: &mut Stream, brand: usize, home: (f64, f64)) -> u32 {
        let stores = &self.stores_of[brand];
        let weights: Vec<f64> = stores
            .iter()
            .map(|&st| {
                let s = &self.sites[st as usize];
                let d = ((s.x - home.0).powi(2) + (s.y - home.1).powi(2)).sqrt();
                1.0 / (d + 300.0).powi(2)
            })
            .collect();
        stores[r.pick(&weights)]
    }
}

/// Sites sorted by x, to find the ones near a route without looking at all of them.
struct ByX<'a> {
    sites: &'a [Site],
    order: Vec<u32>,
}

impl<'a> ByX<'a> {
    fn new(sites: &'a [Site]) -> Self {
        let mut order: Vec<u32> = (0..sites.len() as u32).collect();
        order.sort_by(|&a, &b| sites[a as usize].x.total_cmp(&sites[b as usize].x));
        ByX { sites, order }
    }

    /// Sites in the box `[x0, x1] x [y0, y1]`.
    fn within(
        &self,
        x0: f64,
        x1: f64,
        y0: f64,
        y1: f64,
    ) -> impl Iterator<Item = (usize, &'a Site)> + '_ {
        let start = self
            .order
            .partition_point(|&i| self.sites[i as usize].x < x0);
        self.order[start..]
            .iter()
            .map(|&i| (i as usize, &self.sites[i as usize]))
            .take_while(move |(_, s)| s.x <= x1)
            .filter(move |(_, s)| s.y >= y0 && s.y <= y1)
    }
}

/// The sites within `radius` of the straight route `from` -> `to`.
fn route(sites: &ByX, from: (f64, f64), to: (f64, f64), radius: f64) -> Route {
    let (dx, dy) = (to.0 - from.0, to.1 - from.1);
    let len = (dx * dx + dy * dy).sqrt();
    let (x0, x1) = (from.0.min(to.0) - radius, from.0.max(to.0) + radius);
    let (y0, y1) = (from.1.min(to.1) - radius, from.1.max(to.1) + radius);
    let mut near: Vec<Near> = sites
        .within(x0, x1, y0, y1)
        .filter_map(|(i, s)| {
            let t = if len > 0.0 {
                clampf(
                    ((s.x - from.0) * dx + (s.y - from.1) * dy) / (len * len),
                    0.0,
                    1.0,
                )
            } else {
                0.0
            };
            let (px, py) = (from.0 + t * dx, from.1 + t * dy);
            let d = ((s.x - px).powi(2) + (s.y - py).powi(2)).sqrt();
            // Only sites the route actually passes (not its ends: nobody lives on a board).
            (d <= radius && t > 0.0 && t < 1.0).then_some(Near {
                site: i as u32,
                along_m: (t * len) as f32,
                closest_m: d as f32,
            })
        })
        .collect();
    near.sort_by(|a, b| a.along_m.total_cmp(&b.along_m).then(a.site.cmp(&b.site)));
    Route {
        length_m: len as f32,
        near,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_are_local_and_global_ones_global() {
        let s = Scenario::preset("tiny").expect("tiny");
        let w = World::build(&s, 3, 2);
        assert!(!w.devices.is_empty());
        for (i, d) in w.devices.iter().enumerate() {
            assert_eq!(
                d.global_mac[0] & 0x03,
                0,
                "unicast, universally administered"
            );
            let m = w.local_mac(i as u32, 9);
            assert_eq!(m[0] & 0x03, 0x02, "unicast, locally administered");
        }
        assert_eq!(w.weekday(0), 0, "2026-03-02 is a Monday");
    }
}
