//! The fleet's deployment against real processes: the shipped broker configuration on a real
//! Mosquitto with certificates footfall-fleet issued, and the shipped systemd units scored by
//! systemd-analyze.

mod broker;
mod cli;
mod systemd;
