//! Frame sources: a live monitor-mode interface, or a pcap/pcapng file or FIFO (replay).
//!
//! Both hand the pipeline radiotap frames with their capture timestamps. A source whose link
//! type is not radiotap is refused with a hint on monitor mode. Live capture uses immediate
//! mode, a kernel buffer of `capture.buffer_bytes`, and a BPF filter that passes only probe
//! requests, so the rest of the air never reaches user space.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use firmware_config::{Capture as CaptureConfig, ChannelPlan, FcsPolicy};
use pcap::{Activated, Capture, Linktype};
use tracing::{info, warn};

use crate::mac::RawMac;
use crate::parse::{self, Frame, FrameType, Probe, Reject};
use crate::Error;

/// Only probe requests; libpcap compiles this for the radiotap link type.
pub const BPF_FILTER: &str = "type mgt subtype probe-req";

/// Opens a pcap or pcapng file (or a FIFO carrying one) for replay. Its link type is
/// checked by [`check_file_link`] once it shows a frame: an empty capture is just empty,
/// whatever link type its header names.
fn open_file(path: &Path) -> Result<Capture<pcap::Offline>, Error> {
    Capture::from_file(path).map_err(|source| Error::OpenFile {
        path: path.to_owned(),
        source,
    })
}

/// Frames of a capture file read and parsed on a thread of their own, a chunk at a time, so
/// that libpcap's reading and the parsing overlap the pipeline's work (replay): on two cores
/// the whole replay takes about as long as the pipeline's sessionizing alone.
///
/// A chunk holds each frame's parse and only the information elements of probe requests (the
/// one part of a frame the pipeline reads later). A file's frames are sent a chunk at a time; a
/// FIFO's one at a time, as they come, so that none waits for frames that may be minutes away.
/// The reader checks the link type at the first frame, and stops at the first damaged record,
/// saying after which frame.
pub(crate) struct ReadAhead {
    chunks: Receiver<Chunk>,
    spare: SyncSender<Chunk>,
    thread: JoinHandle<Result<Option<String>, Error>>,
}

/// What [`ReadAhead::next`] found.
pub(crate) enum Next {
    Chunk(Chunk),
    /// The end of the capture: [`ReadAhead::finish`] says whether it was damaged.
    End,
    /// Nothing yet (a quiet FIFO): look at the clock or a shutdown, then ask again.
    Waiting,
}

/// Parsed frames: a probe request's information elements end at `ies[probe.ies_end]` and
/// start where the previous probe request's end.
pub(crate) struct Chunk {
    ies: Vec<u8>,
    frames: Vec<Parsed>,
}

#[derive(Clone, Copy)]
struct Parsed {
    ts_ms: i64,
    frame: Result<Meta, Reject>,
}

/// A [`Frame`] without its borrow.
#[derive(Clone, Copy)]
struct Meta {
    frame_type: FrameType,
    signal_dbm: Option<i8>,
    freq_mhz: Option<u16>,
    probe: Option<ProbeMeta>,
}

#[derive(Clone, Copy)]
struct ProbeMeta {
    transmitter: RawMac,
    seq: u16,
    ies_end: u32,
}

impl Chunk {
    /// Room for `bytes` of elements and as many frames as a full chunk can hold, so that a
    /// chunk is not reallocated as it fills.
    fn with_capacity(bytes: usize) -> Chunk {
        Chunk {
            ies: Vec::with_capacity(bytes + 2048),
            frames: Vec::with_capacity(Chunk::max_frames(bytes)),
        }
    }

    /// The frames a chunk of `bytes` holds at most (most frames carry elements; those that
    /// do not still count).
    fn max_frames(bytes: usize) -> usize {
        bytes.div_ceil(32)
    }

    /// Whether the chunk should be sent now, holding `bytes` or more.
    fn is_full(&self, bytes: usize) -> bool {
        self.ies.len() >= bytes || self.frames.len() >= Chunk::max_frames(bytes)
    }

    fn push(&mut self, ts_ms: i64, frame: Result<Frame<'_>, Reject>) {
        let frame = frame.map(|f| Meta {
            frame_type: f.frame_type,
            signal_dbm: f.signal_dbm,
            freq_mhz: f.freq_mhz,
            probe: f.probe.map(|p| {
                self.ies.extend_from_slice(p.ies);
                ProbeMeta {
                    transmitter: p.transmitter,
                    seq: p.seq,
                    ies_end: u32::try_from(self.ies.len()).expect("a chunk is far below 4 GiB"),
                }
            }),
        });
        self.frames.push(Parsed { ts_ms, frame });
    }

    /// `(capture timestamp in ms, the frame as parsed)` of each frame, in order.
    pub(crate) fn frames(&self) -> impl Iterator<Item = (i64, Result<Frame<'_>, Reject>)> {
        let mut start = 0;
        self.frames.iter().map(move |f| {
            let frame = f.frame.map(|m| Frame {
                frame_type: m.frame_type,
                signal_dbm: m.signal_dbm,
                freq_mhz: m.freq_mhz,
                probe: m.probe.map(|p| {
                    let end = p.ies_end as usize;
                    let ies = &self.ies[start..end];
                    start = end;
                    Probe {
                        transmitter: p.transmitter,
                        seq: p.seq,
                        ies,
                    }
                }),
            });
            (f.ts_ms, frame)
        })
    }
}

/// Bytes of elements per chunk (a file's; a FIFO's chunks are one frame each): enough that
/// handing a chunk over costs little per frame, few enough that a chunk stays in the cache
/// between the two threads and that the chunks in flight add little to the agent's memory.
const CHUNK_BYTES: usize = 16 * 1024;
/// Chunks read ahead of the pipeline.
const CHUNKS_AHEAD: usize = 2;

impl ReadAhead {
    /// Opens `path` (errors here are the caller's) and starts reading it, parsing its frames
    /// under `fcs`.
    pub(crate) fn open(path: &Path, fcs: FcsPolicy) -> Result<ReadAhead, Error> {
        let mut cap = open_file(path)?;
        let chunk_bytes = match std::fs::metadata(path) {
            Ok(m) if m.is_file() => CHUNK_BYTES,
            _ => 1,
        };
        let path = path.to_owned();
        let (send, chunks) = sync_channel::<Chunk>(CHUNKS_AHEAD);
        // Every chunk is allocated here, up front, and goes round: one filling, the ones
        // queued, one in the pipeline. A thread that allocates gets an allocator arena of its
        // own, which would cost more memory than the chunks.
        let (spare, spares) = sync_channel::<Chunk>(CHUNKS_AHEAD + 1);
        for _ in 0..CHUNKS_AHEAD + 1 {
            let _ = spare.try_send(Chunk::with_capacity(chunk_bytes));
        }
        let mut chunk = Chunk::with_capacity(chunk_bytes);
        let thread = std::thread::Builder::new()
            .name("pcap-read".into())
            .spawn(move || {
                let link = cap.get_datalink();
                let mut read = 0u64;
                let damage = loop {
                    let packet = match cap.next_packet() {
                        Ok(p) => p,
                        Err(pcap::Error::NoMorePackets) => break None,
                        // A damaged capture (cut mid-record, corrupt record header): what was
                        // read so far is processed, and the damage reported.
                        Err(e) => {
                            break Some(format!(
                                "{} is damaged after frame {read}: {e}",
                                path.display()
                            ))
                        }
                    };
                    if read == 0 {
                        check_file_link(link, &path)?;
                    }
                    read += 1;
                    let truncated = packet.header.caplen < packet.header.len;
                    chunk.push(
                        ts_ms(packet.header),
                        parse::parse(packet.data, truncated, fcs),
                    );
                    if chunk.is_full(chunk_bytes) {
                        let Ok(next) = spares.recv() else {
                            return Ok(None); // the pipeline stopped
                        };
                        if send.send(std::mem::replace(&mut chunk, next)).is_err() {
                            return Ok(None);
                        }
                    }
                };
                if !chunk.frames.is_empty() {
                    let _ = send.send(chunk);
                }
                Ok(damage)
            })
            .map_err(|_| Error::Panicked("capture reader's start"))?;
        Ok(ReadAhead {
            chunks,
            spare,
            thread,
        })
    }

    /// The next chunk, or what came instead within `timeout`.
    pub(crate) fn next(&self, timeout: Duration) -> Next {
        match self.chunks.recv_timeout(timeout) {
            Ok(c) => Next::Chunk(c),
            Err(RecvTimeoutError::Disconnected) => Next::End,
            Err(RecvTimeoutError::Timeout) => Next::Waiting,
        }
    }

    /// Gives a processed chunk's buffers back to the reader.
    pub(crate) fn recycle(&self, mut chunk: Chunk) {
        chunk.ies.clear();
        chunk.frames.clear();
        let _ = self.spare.try_send(chunk);
    }

    /// After the last chunk: the damage that stopped reading, if any, or the link-type error.
    pub(crate) fn finish(self) -> Result<Option<String>, Error> {
        drop(self.chunks);
        self.thread
            .join()
            .map_err(|_| Error::Panicked("capture reader"))?
    }
}

/// Refuses a capture file whose frames are not radiotap.
fn check_file_link(link: Linktype, path: &Path) -> Result<(), Error> {
    require_radiotap(link, &path.display().to_string())
}

/// Opens a live interface, which must already be in monitor mode.
pub fn open_live(cfg: &CaptureConfig) -> Result<Capture<pcap::Active>, Error> {
    let mut cap = Capture::from_device(cfg.interface.as_str())
        .map_err(|source| Error::NoDevice {
            interface: cfg.interface.clone(),
            source,
        })?
        .immediate_mode(true)
        .promisc(false)
        .snaplen(cfg.snaplen_bytes as i32)
        .buffer_size(cfg.buffer_bytes as i32)
        .timeout(250)
        .open()
        .map_err(|source| Error::OpenLive {
            interface: cfg.interface.clone(),
            source,
        })?;
    require_radiotap(cap.get_datalink(), &cfg.interface)?;
    cap.filter(BPF_FILTER, true).map_err(Error::Filter)?;
    Ok(cap)
}

fn require_radiotap(link: Linktype, input: &str) -> Result<(), Error> {
    if link != Linktype::IEEE802_11_RADIOTAP {
        return Err(Error::NotRadiotap {
            input: input.to_owned(),
            name: link.get_name().unwrap_or_else(|_| "unknown".into()),
            link: link.0,
        });
    }
    Ok(())
}

/// Capture timestamp in milliseconds since the Unix epoch.
// time_t and suseconds_t are 32 bits on some sensor targets (32-bit ARM), 64 here.
#[allow(clippy::unnecessary_cast)]
pub fn ts_ms(h: &pcap::PacketHeader) -> i64 {
    h.ts.tv_sec as i64 * 1000 + h.ts.tv_usec as i64 / 1000
}

/// Kernel and interface drop counters of a live capture.
pub fn drops<T: Activated + ?Sized>(cap: &mut Capture<T>) -> Option<u64> {
    cap.stats()
        .ok()
        .map(|s| u64::from(s.dropped) + u64::from(s.if_dropped))
}

/// Tunes the interface through the channel plan with `iw` until `stop` is set.
pub fn spawn_channel_hopper(
    interface: String,
    plan: ChannelPlan,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("channel-hop".into())
        .spawn(move || {
            let set = |ch: u16| {
                Command::new("iw")
                    .args(["dev", &interface, "set", "channel", &ch.to_string()])
                    .status()
                    .map_err(|e| e.to_string())
                    .and_then(|s| if s.success() { Ok(()) } else { Err(s.to_string()) })
            };
            match plan {
                ChannelPlan::Fixed(ch) => {
                    if let Err(e) = set(ch) {
                        warn!(%interface, channel = ch, error = %e, "could not set the channel");
                    }
                }
                ChannelPlan::Hop { channels, dwell } => {
                    info!(%interface, ?channels, dwell_ms = dwell.as_millis() as u64, "channel hopping");
                    let mut failures = 0u64;
                    for ch in channels.iter().cycle() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        if let Err(e) = set(*ch) {
                            failures += 1;
                            if failures.is_power_of_two() {
                                warn!(%interface, channel = ch, failures, error = %e, "channel change failed");
                            }
                        }
                        std::thread::sleep(dwell.max(Duration::from_millis(20)));
                    }
                }
            }
        })
}
