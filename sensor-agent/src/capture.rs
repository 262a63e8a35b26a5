//! Frame sources: a live monitor-mode interface, or a pcap/pcapng file or FIFO (replay).
//!
//! Both hand the pipeline radiotap frames with their capture timestamps. A source whose link
//! type is not radiotap is refused with a hint on monitor mode. Live capture uses immediate
//! mode, a kernel buffer of `capture.buffer_bytes`, and a BPF filter that passes only probe
//! requests, so the rest of the air never reaches user space.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use firmware_config::{Capture as CaptureConfig, ChannelPlan};
use pcap::{Activated, Capture, Linktype};
use tracing::{info, warn};

use crate::Error;

/// Only probe requests; libpcap compiles this for the radiotap link type.
pub const BPF_FILTER: &str = "type mgt subtype probe-req";

/// Opens a pcap or pcapng file (or a FIFO carrying one) for replay. Its link type is
/// checked by [`check_file_link`] once it shows a frame: an empty capture is just empty,
/// whatever link type its header names.
pub fn open_file(path: &Path) -> Result<Capture<pcap::Offline>, Error> {
    Capture::from_file(path).map_err(|source| Error::OpenFile {
        path: path.to_owned(),
        source,
    })
}

/// Refuses a capture file whose frames are not radiotap.
pub fn check_file_link(link: Linktype, path: &Path) -> Result<(), Error> {
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
