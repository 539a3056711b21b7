//! The process table as `/proc` shows it, and a process's descendants in it: what a
//! child started keeps running after the child is stopped unless it is found, even when
//! it left the child's process group (`setsid`).

use std::collections::HashMap;

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tracing::debug;

/// A process, known by its pid and its start time (so that a pid the system has given to
/// another process since is never signalled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Known {
    /// The process id.
    pub pid: i32,
    /// Its start time, in clock ticks since boot (`/proc/<pid>/stat`, field 22).
    pub started: u64,
}

/// A process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessEntry {
    /// The process id.
    pub pid: i32,
    /// Its parent's.
    pub parent: i32,
    /// Its state (`R`, `S`, `Z` for a zombie, …).
    pub state: char,
    /// Its start time, in clock ticks since boot.
    pub started: u64,
    /// Its command name.
    pub name: String,
}

impl ProcessEntry {
    /// The process, known by its start time too.
    pub fn known(&self) -> Known {
        Known {
            pid: self.pid,
            started: self.started,
        }
    }
}

/// The process `pid`, if there is one.
pub fn stat(pid: i32) -> Option<ProcessEntry> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything: read after its end.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_owned();
    let mut fields = text.get(close + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    // Fields 5 to 21 come before the start time (field 22).
    let started = fields.nth(17)?.parse().ok()?;
    Some(ProcessEntry {
        pid,
        parent,
        state,
        started,
        name,
    })
}

/// Every process this one can see.
pub fn process_table() -> Vec<ProcessEntry> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat)
        .collect()
}

/// Every process in `table` whose ancestry leads to `root` (`root` excluded), zombies
/// included.
pub fn descendants_in(table: &[ProcessEntry], root: i32) -> Vec<&ProcessEntry> {
    let mut children: HashMap<i32, Vec<&ProcessEntry>> = HashMap::new();
    for entry in table {
        children.entry(entry.parent).or_default().push(entry);
    }
    let mut found = Vec::new();
    let mut todo = vec![root];
    while let Some(parent) = todo.pop() {
        for &entry in children.get(&parent).into_iter().flatten() {
            todo.push(entry.pid);
            found.push(entry);
        }
    }
    found
}

/// Every process still running (not a zombie) whose ancestry leads to `root`, `root`
/// excluded.
pub fn descendants(root: i32) -> Vec<Known> {
    let table = process_table();
    descendants_in(&table, root)
        .into_iter()
        .filter(|entry| entry.state != 'Z')
        .map(ProcessEntry::known)
        .collect()
}

/// Whether `process` is still the one known, and running.
pub fn alive(process: Known) -> bool {
    stat(process.pid).is_some_and(|entry| entry.state != 'Z' && entry.started == process.started)
}

/// Signals each of `processes` that is still the one known.
pub(crate) fn signal_all(processes: &[Known], signal: Signal) {
    for &process in processes.iter().filter(|p| alive(**p)) {
        if let Err(error) = kill(Pid::from_raw(process.pid), signal) {
            debug!(pid = process.pid, %error, "signalling a process failed");
        }
    }
}

/// Waits until none of `processes` runs, or `deadline`. They are not our children, so
/// there is nothing to wait on but `/proc`: it is looked at every 50 ms.
#[cfg(test)]
pub(crate) async fn wait_gone(processes: &[Known], deadline: tokio::time::Instant) {
    while processes.iter().any(|p| alive(*p)) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;

    #[tokio::test]
    async fn a_grandchild_in_a_session_of_its_own_is_found_and_stopped() {
        // A shell that starts a `setsid` sleeper and waits: the sleeper leaves the group.
        let mut shell = tokio::process::Command::new("sh")
            .args(["-c", "setsid sleep 600 & wait"])
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let root = i32::try_from(shell.id().unwrap()).unwrap();
        // The shell forks the sleeper after it starts: look until it is there.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut found = descendants(root);
        while found.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            found = descendants(root);
        }
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(alive(found[0]));
        signal_all(&found, Signal::SIGKILL);
        wait_gone(&found, Instant::now() + Duration::from_secs(10)).await;
        assert!(!alive(found[0]));
        shell.kill().await.unwrap();
    }
}
