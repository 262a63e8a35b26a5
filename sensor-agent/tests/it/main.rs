//! Integration tests of `footfall-agent`: the real binary, real captures, a real Mosquitto.

mod cli;
mod delivery;
mod outages;
mod parity;
mod privacy;
mod simulated;
mod util;
