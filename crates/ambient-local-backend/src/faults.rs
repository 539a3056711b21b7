//! Failures a test asks the backend to answer with, as the real one does under load or
//! conflicts (409 from a concurrent update, 5xx, a refused handshake), and calls it holds
//! unanswered (a backend that accepted the request and is slow to answer).

use std::{
    collections::VecDeque,
    sync::{Mutex, MutexGuard, PoisonError},
};

use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

/// Which calls fail next, and how.
#[derive(Debug)]
pub(crate) struct Faults {
    status_next: Mutex<VecDeque<u16>>,
    status_always: Mutex<Option<u16>>,
    handshake_next: Mutex<VecDeque<u16>>,
    session_next: Mutex<VecDeque<u16>>,
    /// Calls to hold, and whom to tell when each arrives.
    stalls: Mutex<Vec<(FaultRoute, oneshot::Sender<()>)>>,
    /// Held calls end (with a 503) when this fires: at shutdown.
    release: CancellationToken,
    /// How many calls each route has had, for tests that act once a call has come.
    calls: [watch::Sender<u64>; 3],
}

/// A route that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultRoute {
    /// `PUT …/agentic-sessions/{s}/status`.
    StatusUpdate,
    /// The WebSocket handshake.
    Handshake,
    /// `GET …/agentic-sessions/{s}`.
    SessionGet,
}

impl FaultRoute {
    fn index(self) -> usize {
        match self {
            Self::StatusUpdate => 0,
            Self::Handshake => 1,
            Self::SessionGet => 2,
        }
    }
}

/// A call the backend holds unanswered; see `LocalBackend::stall_next`.
#[derive(Debug)]
pub struct Stalled(oneshot::Receiver<()>);

impl Stalled {
    /// Resolves when the held call has arrived; `false` if the backend shut down first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn arrived(self) -> bool {
        self.0.await.is_ok()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Faults {
    pub(crate) fn new(release: CancellationToken) -> Self {
        Self {
            status_next: Mutex::default(),
            status_always: Mutex::default(),
            handshake_next: Mutex::default(),
            session_next: Mutex::default(),
            stalls: Mutex::default(),
            release,
            calls: Default::default(),
        }
    }

    /// Counts the calls of `route`, from now on and before.
    pub(crate) fn calls(&self, route: FaultRoute) -> watch::Receiver<u64> {
        self.calls[route.index()].subscribe()
    }

    fn queue(&self, route: FaultRoute) -> &Mutex<VecDeque<u16>> {
        match route {
            FaultRoute::StatusUpdate => &self.status_next,
            FaultRoute::Handshake => &self.handshake_next,
            FaultRoute::SessionGet => &self.session_next,
        }
    }

    pub(crate) fn push(&self, route: FaultRoute, statuses: impl IntoIterator<Item = u16>) {
        lock(self.queue(route)).extend(statuses);
    }

    pub(crate) fn always(&self, status: Option<u16>) {
        *lock(&self.status_always) = status;
    }

    /// Holds the next call of `route`.
    pub(crate) fn stall_next(&self, route: FaultRoute) -> Stalled {
        let (arrived, waiting) = oneshot::channel();
        lock(&self.stalls).push((route, arrived));
        Stalled(waiting)
    }

    /// The status the next call of `route` must fail with, if any; a call to hold waits
    /// here, unanswered, until the backend shuts down, and then fails with 503.
    pub(crate) async fn next(&self, route: FaultRoute) -> Option<u16> {
        self.calls[route.index()].send_modify(|count| *count += 1);
        let stall = {
            let mut stalls = lock(&self.stalls);
            let index = stalls.iter().position(|(r, _)| *r == route);
            index.map(|index| stalls.remove(index).1)
        };
        if let Some(arrived) = stall {
            let _told = arrived.send(());
            self.release.cancelled().await;
            return Some(503);
        }
        let queued = lock(self.queue(route)).pop_front();
        match route {
            FaultRoute::StatusUpdate => queued.or(*lock(&self.status_always)),
            FaultRoute::Handshake | FaultRoute::SessionGet => queued,
        }
    }
}

/// The body the real backend sends with a failure of this status.
pub(crate) fn error_text(status: u16) -> &'static str {
    match status {
        401 => "Invalid or missing token",
        403 => "Unauthorized to access project",
        404 => "Session not found",
        409 => "Failed to update agentic session status",
        _ => "Failed to update agentic session status",
    }
}
