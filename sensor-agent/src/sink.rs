//! Where batches go: the spool (then the broker), or a file of envelopes (`replay --out`).

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

/// Writes each envelope as a record of a file of envelopes (JSON lines or binary: wire docs,
/// "Files of envelopes"), numbering from 1 as a fresh spool would.
pub struct FileSink<W: Write> {
    origin: Origin,
    encoding: wire::Encoding,
    out: W,
    next_seq: u64,
    record: Vec<u8>,
}

impl<W: Write> FileSink<W> {
    pub fn new(origin: Origin, encoding: wire::Encoding, out: W) -> Self {
        FileSink {
            origin,
            encoding,
            out,
            next_seq: 1,
            record: Vec::new(),
        }
    }

    pub fn flush(&mut self) -> Result<(), Error> {
        self.out.flush().map_err(Error::Write)
    }
}

impl<W: Write> BatchSink for FileSink<W> {
    fn put(&mut self, batch: Batch) -> Result<(), Error> {
        let e = self.origin.envelope(self.next_seq, batch);
        self.next_seq += 1;
        // Encoded into memory first: one write per envelope, not one per field.
        self.record.clear();
        wire::file::append_record(&e, self.encoding, &mut self.record);
        self.out.write_all(&self.record).map_err(Error::Write)
    }
}
