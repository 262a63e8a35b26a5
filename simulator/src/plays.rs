//! The billboards' creative loops: which creative is on screen when, and the proof-of-play log.
//!
//! A board plays from its open hour to its close hour, in slots of `slot_secs` that repeat
//! every `loop_slots` slots from the board's phase. Campaigns running on the board that day
//! hold the first loop positions, in scenario order (`slots_per_loop` each); the other
//! positions show the other brands' creatives.

use crate::scenario::Scenario;
use crate::world::{Micros, World, DAY, HOUR, SEC};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Campaign(usize),
    Other(usize),
}

pub struct Plays<'a> {
    s: &'a Scenario,
    w: &'a World,
    slot: Micros,
}

/// One play: a slot on a board.
pub struct Play {
    pub start: Micros,
    pub end: Micros,
    pub owner: Owner,
}

impl<'a> Plays<'a> {
    pub fn new(s: &'a Scenario, w: &'a World) -> Self {
        Plays {
            s,
            w,
            slot: Micros::from(s.billboards.slot_secs) * SEC,
        }
    }

    /// Whether campaign `c` runs on board `site` on the day containing `t`.
    pub fn runs(&self, c: usize, site: u32, t: Micros) -> bool {
        let camp = &self.s.campaigns[c];
        let day = (t - self.w.start).div_euclid(DAY);
        let on_board = camp.boards == 0 || self.w.boards[..camp.boards as usize].contains(&site);
        on_board
            && (i64::from(camp.start_day)..i64::from(camp.start_day + camp.days)).contains(&day)
    }

    /// Whether boards play at `t` (inside their hours).
    pub fn playing(&self, t: Micros) -> bool {
        let b = &self.s.billboards;
        let tod = t.rem_euclid(DAY);
        tod >= Micros::from(b.open_hour) * HOUR && tod < Micros::from(b.close_hour) * HOUR
    }

    /// Who owns loop position `pos` on `site` on the day containing `t`.
    fn owner(&self, site: u32, pos: u32, t: Micros) -> Owner {
        let mut first = 0;
        for (c, camp) in self.s.campaigns.iter().enumerate() {
            if self.runs(c, site, t) {
                if pos < first + camp.slots_per_loop {
                    return Owner::Campaign(c);
                }
                first += camp.slots_per_loop;
            }
        }
        let others = self.s.billboards.other_brands.len();
        Owner::Other((pos as usize + site as usize) % others)
    }

    /// The plays on `site` that overlap `[a, b)`, in time order.
    pub fn between(&self, site: u32, a: Micros, b: Micros) -> impl Iterator<Item = Play> + '_ {
        let phase = self.w.phase[site as usize];
        let first = (a - phase).div_euclid(self.slot);
        let last = (b - 1 - phase).div_euclid(self.slot);
        let loop_slots = i64::from(self.s.billboards.loop_slots);
        (first..=last).filter_map(move |k| {
            let start = phase + k * self.slot;
            if !self.playing(start) {
                return None;
            }
            let pos = k.rem_euclid(loop_slots) as u32;
            Some(Play {
                start,
                end: start + self.slot,
                owner: self.owner(site, pos, start),
            })
        })
    }

    /// How long campaign `c`'s creative was on screen at `site` during `[a, b)`.
    pub fn overlap(&self, c: usize, site: u32, a: Micros, b: Micros) -> Micros {
        if b <= a {
            return 0;
        }
        self.between(site, a, b)
            .filter(|p| p.owner == Owner::Campaign(c))
            .map(|p| p.end.min(b) - p.start.max(a))
            .sum()
    }

    /// The loop's length.
    pub fn loop_len(&self) -> Micros {
        self.slot * Micros::from(self.s.billboards.loop_slots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_campaign_holds_its_share_of_the_loop_during_its_flight_only() {
        let s = Scenario::preset("tiny").expect("tiny");
        let w = World::build(&s, 1, 2);
        let p = Plays::new(&s, &w);
        let board = w.boards[0];
        let day = |d: u32| w.day_start(d) + 12 * HOUR;
        let share = |t: Micros| {
            let plays: Vec<Play> = p
                .between(board, t, t + HOUR)
                .filter(|x| x.start >= t)
                .collect();
            let ours = plays
                .iter()
                .filter(|x| matches!(x.owner, Owner::Campaign(0)))
                .count();
            (ours, plays.len())
        };
        let (ours, all) = share(day(1));
        assert_eq!(all, 360, "10 s slots for an hour");
        assert_eq!(ours, 60, "one slot in six");
        assert_eq!(share(day(0)).0, 0, "before the flight");
        assert_eq!(share(day(2)).0, 0, "after the flight");
        let night = w.day_start(1) + 3 * HOUR;
        assert_eq!(
            p.between(board, night, night + HOUR).count(),
            0,
            "dark at night"
        );
        // Over a full loop the creative is on screen for exactly one slot.
        let t = day(1);
        assert_eq!(p.overlap(0, board, t, t + p.loop_len()), 10 * SEC);
    }
}
