//! Where batches go: the spool (then the broker), or JSON lines (`replay --out`).

use std::io::Write;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use wire::Envelope;

use crate::pipeline::{Batch, BatchSink};
use crate::spool::Spool;
use crate::Error;

/// Names a sensor's batches on the wire.
#[derive(Clone, Debug)]
pub struct Origin {
    pub sensor: String,
    pub site: String,
}

impl Origin {
    fn envelope(&self, seq: u64, batch: Batch) -> Envelope {
        Envelope {
            v: wire::VERSION,
            sensor: self.sensor.clone(),
            site: self.site.clone(),
            seq,
            epoch: batch.epoch,
            sent_at: batch.sent_at,
            sightings: batch.sightings,
        }
    }
}

/// Appends each batch to the spool, encoded for the wire, and wakes the publisher.
pub struct SpoolSink {
    pub origin: Origin,
    pub encoding: wire::Encoding,
    pub spool: Arc<Mutex<Spool>>,
    pub wake: Arc<Notify>,
}

impl BatchSink for SpoolSink {
    fn put(&mut self, batch: Batch) -> Result<(), Error> {
        let mut batch = Some(batch);
        let mut spool = self.spool.lock().expect("spool lock is never poisoned");
        spool.append(|seq| {
            let b = batch.take().expect("append calls its payload builder once");
            self.origin.envelope(seq, b).encode(self.encoding)
        });
        drop(spool);
        self.wake.notify_one();
        Ok(())
    }
}

/// Writes each envelope as one JSON line, numbering from 1 as a fresh spool would.
pub struct JsonLinesSink<W: Write> {
    origin: Origin,
    out: W,
    next_seq: u64,
    line: Vec<u8>,
}

impl<W: Write> JsonLinesSink<W> {
    pub fn new(origin: Origin, out: W) -> Self {
        JsonLinesSink {
            origin,
            out,
            next_seq: 1,
            line: Vec::new(),
        }
    }

    pub fn flush(&mut self) -> Result<(), Error> {
        self.out.flush().map_err(Error::Write)
    }
}

impl<W: Write> BatchSink for JsonLinesSink<W> {
    fn put(&mut self, batch: Batch) -> Result<(), Error> {
        let e = self.origin.envelope(self.next_seq, batch);
        self.next_seq += 1;
        // Serialize into memory first: one write per envelope, not one per JSON token.
        self.line.clear();
        serde_json::to_writer(&mut self.line, &e).expect("envelopes serialize");
        self.line.push(b'\n');
        self.out.write_all(&self.line).map_err(Error::Write)
    }
}
