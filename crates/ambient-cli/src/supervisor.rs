//! The runner as PID 1 of its container, as the images start it (no init before it).
//!
//! A process the agent leaves behind (an orphan) is handed to PID 1, which must reap it or
//! it stays a zombie; and PID 1 gets no default signal handling, so SIGTERM does nothing
//! unless it is asked for. A runner is an async program whose child processes are the
//! runtime's to reap, so it does not reap for others in the same process: as PID 1 it
//! starts itself again as a child (the worker, which runs the session) and becomes a
//! small init:
//!
//! - it reaps every process handed to it, whenever one ends;
//! - it passes `SIGTERM`, `SIGINT`, `SIGHUP`, `SIGQUIT`, `SIGUSR1` and `SIGUSR2` on to the
//!   worker;
//! - when the worker has exited, it stops what is left in the container (`SIGTERM` to
//!   every process, then `SIGKILL` [`LEFTOVER_GRACE_SECONDS`] later), reaps it, and exits
//!   with the worker's code (128 + the signal when a signal ended it).
//!
//! It does no IO of its own beyond that, and holds nothing of the session's.

use std::process::{Command, ExitCode};

use nix::{
    errno::Errno,
    sys::{
        signal::{SigSet, Signal, kill},
        wait::{WaitPidFlag, WaitStatus, waitpid},
    },
    unistd::{Pid, alarm},
};

/// The signals passed on to the worker.
const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// From `SIGTERM` to `SIGKILL` for what is left once the worker has exited.
pub const LEFTOVER_GRACE_SECONDS: u32 = 2;

/// When this process is PID 1, runs the runner as a child under supervision and gives
/// its exit code; otherwise `None`, and the caller goes on as the runner.
pub(crate) fn supervise_if_init() -> Option<ExitCode> {
    if std::process::id() != 1 {
        return None;
    }
    let executable = std::env::current_exe().ok()?;
    let mut waited = SigSet::empty();
    for signal in FORWARDED
        .into_iter()
        .chain([Signal::SIGCHLD, Signal::SIGALRM])
    {
        waited.add(signal);
    }
    // Blocked before the worker starts, so that none is missed; the standard library
    // clears the mask in the child.
    waited.thread_block().ok()?;
    let worker = Command::new(executable)
        .args(std::env::args_os().skip(1))
        .spawn();
    let worker = match worker {
        Ok(worker) => worker,
        Err(error) => {
            let _unblocked = waited.thread_unblock();
            complain(&format!(
                "as PID 1, the runner could not start itself as a child ({error}); running without reaping orphans"
            ));
            return None;
        }
    };
    let worker = Pid::from_raw(i32::try_from(worker.id()).unwrap_or(i32::MAX));
    Some(ExitCode::from(supervise(worker, &waited)))
}

#[allow(
    clippy::print_stderr,
    reason = "the supervisor has no logger of its own"
)]
fn complain(text: &str) {
    eprintln!("{text}");
}

/// Reaps, forwards and, once the worker is gone, clears up; returns the worker's code.
fn supervise(worker: Pid, waited: &SigSet) -> u8 {
    let mut worker_code = None;
    // 0: the worker runs; 1: leftovers got SIGTERM; 2: they got SIGKILL; 3: gave up.
    let mut stage = 0;
    loop {
        let children_left = reap(worker, &mut worker_code);
        if let Some(code) = worker_code {
            if !children_left || stage == 3 {
                return code;
            }
            if stage == 0 {
                stage = 1;
                // Every process in the container but this one.
                let _signalled = kill(Pid::from_raw(-1), Signal::SIGTERM);
                alarm::set(LEFTOVER_GRACE_SECONDS);
            }
        }
        match waited.wait() {
            Ok(Signal::SIGCHLD) | Err(_) => {}
            Ok(Signal::SIGALRM) if stage == 1 => {
                stage = 2;
                let _signalled = kill(Pid::from_raw(-1), Signal::SIGKILL);
                alarm::set(LEFTOVER_GRACE_SECONDS);
            }
            Ok(Signal::SIGALRM) if stage == 2 => {
                complain("processes left after the runner did not die of SIGKILL; exiting");
                stage = 3;
            }
            Ok(signal) => {
                if worker_code.is_none() && FORWARDED.contains(&signal) {
                    let _forwarded = kill(worker, signal);
                }
            }
        }
    }
}

/// Reaps every child that has ended, noting the worker's code; says whether any child is
/// left.
fn reap(worker: Pid, worker_code: &mut Option<u8>) -> bool {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == worker => {
                *worker_code = Some(u8::try_from(code).unwrap_or(1));
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == worker => {
                *worker_code =
                    Some(128_u8.saturating_add(u8::try_from(signal as i32).unwrap_or(0)));
            }
            Ok(WaitStatus::StillAlive) => return true,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
}
