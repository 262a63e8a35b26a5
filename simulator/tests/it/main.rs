//! Integration tests of the simulator: the CLI, determinism, the captures against tshark,
//! the fast mode, and the consistency of the ground truth.

mod cli;
mod truth;
mod util;
