//! Any byte string as a captured frame: parsing must never panic, under either FCS policy,
//! whether or not the capture says the frame was truncated.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sensor_agent::fuzz_frame(data);
});
