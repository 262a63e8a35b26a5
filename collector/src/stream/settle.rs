//! What a checkpoint settles besides the visits: the receive time before which every
//! sighting the stage was handed is in its state, or was too late for it and has had its
//! visits recomputed (`stream_checkpoints.settled_ms`).
//!
//! A sighting too late for the state is left to a recompute ([`super::recompute`]), which
//! waits until such sightings stop coming. The ingest acknowledges a message once its
//! sightings are handed to the stage, so a stop before the recompute, or before the stage
//! took the batch, would lose those visits: the broker does not send the message again, and
//! the sightings are behind the horizon the next start reads back. So a batch is unsettled
//! from the moment its first message is received until the writer has what the workers made
//! of it (the dataflow's frontier has passed the time it was fed at), and a too-late
//! sighting until its recompute is done; the checkpoint records the earliest receive time
//! still unsettled, and the next start recomputes the visits around the sightings received
//! since then that are behind its horizon.
//!
//! (In a timely cluster, a worker of another process may merge a batch, and report its
//! late sightings to that process's writer: between that report and that writer's next
//! checkpoint, within a commit (`ingest.batch_max_age_ms`, a second by default), a kill of
//! that process alone can still lose them.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A batch of received sightings, unsettled until the writer settles it once fed; dropped
/// before it is fed (the batch made no sighting, or was not committed, so its messages are
/// not acknowledged), it settles nothing.
pub struct Ticket {
    id: u64,
    unsettled: Unsettled,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.unsettled.0.lock().expect("not poisoned");
        if let Some((_, None)) = open.batches.get(&self.id) {
            open.batches.remove(&self.id);
        }
    }
}

/// The batches unsettled, shared by the ingest (which opens them), the feeding worker
/// (which feeds them) and the writer (which settles them).
#[derive(Clone, Default)]
pub(super) struct Unsettled(Arc<Mutex<Open>>);

#[derive(Default)]
struct Open {
    next: u64,
    /// Per ticket: the earliest receive time of its sightings, and the input time it was
    /// fed at, once fed.
    batches: BTreeMap<u64, (i64, Option<u64>)>,
}

impl Unsettled {
    /// Opens a batch whose sightings were received at `received_ms` or after; with
    /// `None`, at the wall clock, read under the lock, so no batch opened after a
    /// [`Unsettled::settle`] was received before the time it returned.
    pub(super) fn open(&self, received_ms: Option<i64>) -> (Ticket, i64) {
        let mut open = self.0.lock().expect("not poisoned");
        let at = received_ms.unwrap_or_else(|| wire::Millis::now().0);
        open.next += 1;
        let id = open.next;
        open.batches.insert(id, (at, None));
        let ticket = Ticket {
            id,
            unsettled: self.clone(),
        };
        (ticket, at)
    }

    /// A sighting of the batch was received at `received_ms` (a held message replayed
    /// keeps the time it first came).
    pub(super) fn received(&self, ticket: &Ticket, received_ms: i64) {
        let mut open = self.0.lock().expect("not poisoned");
        if let Some((at, _)) = open.batches.get_mut(&ticket.id) {
            *at = (*at).min(received_ms);
        }
    }

    /// The batch is in the dataflow, at input time `t`.
    pub(super) fn fed(&self, ticket: Ticket, t: u64) {
        // (`ticket` drops after the lock is released: parameters drop after locals.)
        let mut open = self.0.lock().expect("not poisoned");
        if let Some((_, fed)) = open.batches.get_mut(&ticket.id) {
            *fed = Some(t);
        }
    }

    /// Settles the batches fed before `frontier` (the writer has what the workers made of
    /// them, their late sightings among it), and returns the earliest receive time still
    /// unsettled: of the batches left, of `pending` (the late sightings whose recompute is
    /// not done), or else the wall clock.
    pub(super) fn settle(&self, frontier: u64, pending: Option<i64>) -> i64 {
        let mut open = self.0.lock().expect("not poisoned");
        open.batches
            .retain(|_, (_, fed)| fed.is_none_or(|t| t >= frontier));
        let now = wire::Millis::now().0;
        open.batches
            .values()
            .map(|&(at, _)| at)
            .chain(pending)
            .fold(now, i64::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_unsettled_from_its_receipt_until_the_frontier_passes_it() {
        let u = Unsettled::default();
        let (a, _) = u.open(Some(100));
        let (b, _) = u.open(Some(200));
        u.received(&b, 50);
        let (c, _) = u.open(Some(300));
        u.fed(a, 1);
        u.fed(b, 2);
        // Fed, but the frontier has not passed them; c is not fed yet.
        assert_eq!(u.settle(1, None), 50);
        assert_eq!(u.settle(2, Some(70)), 50);
        // Past b: what is left is c, and the late sightings' recompute.
        assert_eq!(u.settle(3, Some(70)), 70);
        assert_eq!(u.settle(3, None), 300);
        drop(c);
        let before = wire::Millis::now().0;
        let settled = u.settle(3, None);
        assert!(settled >= before, "nothing unsettled: the wall clock");
        // A batch opened afterwards was received no earlier.
        let (_, at) = u.open(None);
        assert!(at >= settled);
    }
}
