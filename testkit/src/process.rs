//! Child processes: who we run as, where their files go, and stopping them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use tempfile::TempDir;

use crate::wait_for;

/// A server's directory: a temp dir removed with it (tests), or one the caller keeps
/// (scripts: `footfall-local`, whose logs and data outlive the run).
pub(crate) enum Workdir {
    Temp(TempDir),
    Kept(PathBuf),
}

impl Workdir {
    pub(crate) fn temp() -> Workdir {
        Workdir::Temp(tempfile::tempdir().expect("tempdir"))
    }

    /// `dir`, created if missing.
    pub(crate) fn kept(dir: &Path) -> Workdir {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Workdir::Kept(dir.to_owned())
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            Workdir::Temp(t) => t.path(),
            Workdir::Kept(p) => p,
        }
    }
}

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

/// A child process that is killed (SIGKILL) and reaped when dropped, unless it has exited
/// already: a test that fails midway leaves nothing running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Sends signal `sig` (`kill`'s form: `-STOP`, `-CONT`, `-KILL`) to process `pid`; panics if
/// it cannot be sent.
pub fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill {sig} {pid}");
}
