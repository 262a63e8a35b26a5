//! The epoch bridge applied to the rows a report reads (wire crate docs, "Epoch bridges"): a
//! key of the next epoch that has a pair in the collector's `bridges` is replaced by its
//! device's key of the epoch before, so one phone is one unit on both sides of the boundary.
//! One boundary per report, never a chain of them.
//!
//! ClickHouse selects the pairs of the keys the report meets ([`Bridge::wanted`]); the rows
//! are rekeyed here once read ([`Bridge::key`]). The join of every row read with
//! the pairs ran in SQL until a month of a city showed its cost: 5.6 of a report's 17.8 s
//! were statements reading `visits` through it.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::units::{Arm, Pass};

/// The pairs a report follows devices across one boundary by.
#[derive(Debug, Default)]
pub struct Bridge {
    /// The epoch before the bridged boundary; `None`: no boundary is bridged.
    epoch: Option<u32>,
    /// Next key -> its device's key of `epoch` (device keys are hashes already: FxHash, for
    /// millions of lookups a report).
    before: FxHashMap<u64, u64>,
}

impl Bridge {
    /// A bridge from `epoch` into the next, without pairs yet (`None`: rows keep their keys).
    pub fn new(epoch: Option<u32>) -> Bridge {
        Bridge {
            epoch,
            before: FxHashMap::default(),
        }
    }

    /// The epoch before the bridged boundary.
    pub fn epoch(&self) -> Option<u32> {
        self.epoch
    }

    /// The keys of the flight's `passes` (as read: linkable where global) and of the loyalty
    /// `links` (epoch, device, card) whose pairs the report needs, each sorted, once each
    /// (none when no boundary is bridged):
    /// - `next`: the next epoch's keys of global addresses and links. Followed across the
    ///   boundary, each can be an arm's, or its link.
    /// - `before`: every key of the epoch before. A next key paired with one of them is the
    ///   same device as a pass or a link the report holds; and every arm of that epoch is
    ///   one of them, so these are also the pairs its stays after the boundary are found by
    ///   ([`Bridge::stay_keys`]).
    ///
    /// A next key in neither (a randomized address's pass) counts the same under either key,
    /// so its pair is not read: a month of a city's report sends 0.35 M keys, where all the
    /// next keys were 2.24 M (benches/README.md, "Run 37").
    pub fn wanted(&self, passes: &[Pass], links: &[(u32, u64, String)]) -> Wanted {
        let mut wanted = Wanted::default();
        let Some(before) = self.epoch else {
            return wanted;
        };
        let keys = (passes.iter().map(|p| (p.epoch, p.device, p.linkable))).chain(
            links
                .iter()
                .map(|&(epoch, device, _)| (epoch, device, true)),
        );
        for (epoch, device, sure) in keys {
            if epoch == before {
                wanted.before.push(device);
            } else if epoch == before + 1 && sure {
                wanted.next.push(device);
            }
        }
        for keys in [&mut wanted.next, &mut wanted.before] {
            keys.sort_unstable();
            keys.dedup();
        }
        wanted
    }

    /// Adds pairs (next key, key before). A next key with two pairs (a hash collision)
    /// keeps the first, so no row is doubled.
    pub fn add(&mut self, pairs: impl IntoIterator<Item = (u64, u64)>) {
        for (next, before) in pairs {
            self.before.entry(next).or_insert(before);
        }
    }

    /// The key a row of `epoch` and `device` is followed under: its device's key of the
    /// epoch before where it has a pair, else its own.
    pub fn key(&self, epoch: u32, device: u64) -> (u32, u64) {
        match self.epoch {
            Some(e) if epoch == e + 1 => self
                .before
                .get(&device)
                .map_or((epoch, device), |&before| (e, before)),
            _ => (epoch, device),
        }
    }

    /// The arms' keys as stay rows carry them, under their keys after the bridge
    /// ([`ArmKeys::arm`]).
    pub fn arm_keys(&self, arms: &[Arm]) -> ArmKeys {
        let devices: FxHashSet<u64> = arms.iter().map(|a| a.device).collect();
        let mut next = FxHashMap::default();
        if self.epoch.is_some() {
            // A next key with a pair is its pair's; one without is its own.
            next.extend(
                (self.before.iter())
                    .filter(|(_, b)| devices.contains(b))
                    .map(|(&n, &b)| (n, b)),
            );
            next.extend(
                (devices.iter())
                    .filter(|d| !self.before.contains_key(d))
                    .map(|&d| (d, d)),
            );
        }
        ArmKeys {
            next_epoch: self.epoch.map(|e| e + 1),
            next,
            devices,
        }
    }

    /// What the arms' stays are selected by: their own keys, in order, then the next keys
    /// paired with an arm of the epoch before the boundary, sorted.
    pub fn stay_keys(&self, arms: &[Arm]) -> Vec<u64> {
        let before: FxHashSet<u64> = arms
            .iter()
            .filter(|a| Some(a.epoch) == self.epoch)
            .map(|a| a.device)
            .collect();
        let mut next: Vec<u64> = self
            .before
            .iter()
            .filter(|(_, b)| before.contains(b))
            .map(|(&next, _)| next)
            .collect();
        next.sort_unstable();
        arms.iter().map(|a| a.device).chain(next).collect()
    }
}

/// The keys whose pairs a report reads ([`Bridge::wanted`]): by their next key, and by
/// their key before the boundary.
#[derive(Debug, Default, PartialEq)]
pub struct Wanted {
    pub next: Vec<u64>,
    pub before: Vec<u64>,
}

/// Which arm a stay row belongs to, in one lookup a row (a month of a city's stays is
/// millions of rows): the keys of the epoch after the bridged boundary mapped to their arm,
/// and the arms' own keys for the rows of every other epoch.
#[derive(Debug)]
pub struct ArmKeys {
    next_epoch: Option<u32>,
    /// The next epoch's keys that are an arm's: paired with one, or one's own.
    next: FxHashMap<u64, u64>,
    /// The arms' devices.
    devices: FxHashSet<u64>,
}

impl ArmKeys {
    /// The arm (its device) a row of `epoch` and `device` belongs to, under its key after
    /// the bridge ([`Bridge::key`]): a stay of the arm's device, or none.
    pub fn arm(&self, epoch: u32, device: u64) -> Option<u64> {
        if Some(epoch) == self.next_epoch {
            self.next.get(&device).copied()
        } else {
            self.devices.contains(&device).then_some(device)
        }
    }
}

/// Loyalty links under their keys after the bridge: each key's cards, once each (a member
/// linked in both epochs is one link, not two).
#[derive(Debug, Default)]
pub struct Links {
    cards: FxHashMap<(u32, u64), Vec<String>>,
}

impl Links {
    /// The links `rows` (epoch, device, card) through `bridge`.
    pub fn new(rows: impl IntoIterator<Item = (u32, u64, String)>, bridge: &Bridge) -> Links {
        let mut cards: FxHashMap<(u32, u64), Vec<String>> = FxHashMap::default();
        for (epoch, device, card) in rows {
            let of = cards.entry(bridge.key(epoch, device)).or_default();
            if !of.contains(&card) {
                of.push(card);
            }
        }
        Links { cards }
    }

    /// Whether the key holds a link.
    pub fn linked(&self, epoch: u32, device: u64) -> bool {
        self.cards.contains_key(&(epoch, device))
    }

    /// Each linked arm's cards: (device, t0, card), for its revenue.
    pub fn of<'a>(&'a self, arms: &'a [Arm]) -> impl Iterator<Item = (u64, i64, &'a str)> + 'a {
        arms.iter().flat_map(move |a| {
            self.cards
                .get(&(a.epoch, a.device))
                .into_iter()
                .flatten()
                .map(move |card| (a.device, a.t0, card.as_str()))
        })
    }
}

/// The flight's passes as read (their own keys; linkable: a global address) rekeyed through
/// `bridge`, and linkable also where the key holds a loyalty link.
pub fn follow(passes: &mut [Pass], bridge: &Bridge, links: &Links) {
    let each = |passes: &mut [Pass]| {
        for p in passes {
            (p.epoch, p.device) = bridge.key(p.epoch, p.device);
            p.linkable |= links.linked(p.epoch, p.device);
        }
    };
    // A lookup or two a pass, in two halves at once.
    let (first, second) = passes.split_at_mut(passes.len() / 2);
    crate::units::at_once(|| each(second), || each(first));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(device: u64, epoch: u32) -> Arm {
        Arm {
            device,
            epoch,
            exposed: true,
            t0: 100 + device as i64,
            board: 0,
        }
    }

    fn pass(device: u64, epoch: u32, linkable: bool) -> Pass {
        Pass {
            device,
            epoch,
            board: 0,
            first_ms: 0,
            last_ms: 0,
            linkable,
        }
    }

    #[test]
    fn next_keys_with_a_pair_take_the_key_before() {
        let mut b = Bridge::new(Some(455));
        let passes = [
            pass(9, 456, true),
            pass(7, 455, false),
            pass(8, 456, true),
            pass(8, 456, true),
            pass(6, 457, true),
            pass(5, 456, false),
            pass(3, 454, true),
        ];
        let links = [(455, 4, "card-4".to_owned()), (456, 2, "card-2".to_owned())];
        assert_eq!(
            b.wanted(&passes, &links),
            Wanted {
                next: vec![2, 8, 9],
                before: vec![4, 7],
            },
            "the next epoch's global and linked keys, every key before, once each; a next \
             randomized key only through the key before it"
        );
        b.add([(8, 7), (9, 3)]);
        b.add([(8, 70)]);
        assert_eq!(
            b.key(456, 8),
            (455, 7),
            "the first pair of a next key holds"
        );
        assert_eq!(b.key(456, 9), (455, 3));
        assert_eq!(b.key(456, 5), (456, 5), "no pair: its own key");
        assert_eq!(b.key(457, 8), (457, 8), "two epochs on: not bridged");
        assert_eq!(b.key(455, 8), (455, 8), "the epoch before: its own key");
        assert_eq!(
            b.stay_keys(&[arm(7, 455), arm(3, 454), arm(50, 456)]),
            [7, 3, 50, 8],
            "the arms' keys, then the next key of the arm before the boundary; 9's device is \
             another epoch's arm"
        );
        let keys = b.arm_keys(&[arm(7, 455), arm(50, 456), arm(60, 454)]);
        assert_eq!(keys.arm(456, 8), Some(7), "a stay under the next key");
        assert_eq!(keys.arm(456, 50), Some(50), "an arm's own next key");
        assert_eq!(keys.arm(456, 9), None, "paired with no arm");
        assert_eq!(keys.arm(455, 7), Some(7));
        assert_eq!(keys.arm(454, 60), Some(60));
        assert_eq!(keys.arm(455, 8), None, "a next key in another epoch");
        assert_eq!(keys.arm(457, 8), None);
        let keys = Bridge::new(None).arm_keys(&[arm(7, 455)]);
        assert_eq!(keys.arm(456, 7), Some(7), "no bridge: own keys");
        let none = Bridge::new(None);
        assert_eq!(none.wanted(&passes, &links), Wanted::default());
        assert_eq!(none.stay_keys(&[arm(7, 455)]), [7], "no bridge: own keys");
        assert_eq!(none.key(456, 8), (456, 8));
    }

    #[test]
    fn links_follow_the_bridge_and_mark_passes() {
        let mut b = Bridge::new(Some(455));
        b.add([(8, 7)]);
        let links = Links::new(
            [
                (456, 8, "card-7".to_owned()),
                (455, 7, "card-7".to_owned()),
                (455, 7, "card-x".to_owned()),
                (455, 1, "card-1".to_owned()),
            ],
            &b,
        );
        let arms = [arm(7, 455), arm(2, 455)];
        let of: Vec<_> = links.of(&arms).collect();
        assert_eq!(
            of,
            [(7, 107, "card-7"), (7, 107, "card-x")],
            "a card linked in both epochs once; an arm without a link has none"
        );
        let mut passes = [pass(8, 456, false), pass(5, 456, true), pass(4, 455, false)];
        follow(&mut passes, &b, &links);
        assert_eq!(
            passes.map(|p| (p.device, p.epoch, p.linkable)),
            [(7, 455, true), (5, 456, true), (4, 455, false)]
        );
    }
}
