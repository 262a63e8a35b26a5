//! Why the agent stopped: one error type for the library's entry points ([`crate::run`],
//! [`crate::replay`]); the binary adds nothing but the exit code.

use std::path::PathBuf;

use crate::capture::BPF_FILTER;
use crate::spool::SpoolError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to open capture {}", path.display())]
    OpenFile {
        path: PathBuf,
        #[source]
        source: pcap::Error,
    },
    #[error("no capture device {interface}")]
    NoDevice {
        interface: String,
        #[source]
        source: pcap::Error,
    },
    #[error("failed to open {interface} for capture (root or CAP_NET_RAW is needed)")]
    OpenLive {
        interface: String,
        #[source]
        source: pcap::Error,
    },
    #[error("failed to set the BPF filter {BPF_FILTER:?}")]
    Filter(#[source] pcap::Error),
    /// The interface is not in monitor mode, or the file is not a radiotap capture.
    #[error(
        "{input} has link type {name} ({link}), not 802.11 radiotap (127): put the interface \
         in monitor mode first, e.g. `iw phy phy0 interface add mon0 type monitor && ip link \
         set mon0 up`, and set capture.interface = \"mon0\""
    )]
    NotRadiotap {
        input: String,
        name: String,
        link: i32,
    },
    #[error("capture failed")]
    Capture(#[source] pcap::Error),
    #[error("failed to start the channel hopper")]
    Hopper(#[source] std::io::Error),
    /// A file the configuration names cannot be read (exit 78, like a bad configuration).
    #[error(transparent)]
    Config(#[from] firmware_config::ConfigError),
    #[error("failed to create {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write envelopes")]
    Write(#[source] std::io::Error),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// A bug: the thread's panic message is in the log above.
    #[error("the {0} panicked")]
    Panicked(&'static str),
}
