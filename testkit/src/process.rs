//! Child processes: who we run as, and stopping them.

use std::fs;
use std::process::{Child, Command};
use std::time::Duration;

use crate::wait_for;

pub(crate) fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// SIGTERM, then SIGKILL if `child` has not exited after `grace`.
pub(crate) fn terminate(child: Option<Child>, grace: Duration) {
    if let Some(mut child) = child {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        if wait_for(grace, || child.try_wait().ok().flatten()).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
