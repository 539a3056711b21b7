//! Failures a test asks the backend to answer with, as the real one does under load or
//! conflicts (409 from a concurrent update, 5xx, a refused handshake).

use std::{
    collections::VecDeque,
    sync::{Mutex, PoisonError},
};

/// Which calls fail next, and how.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    status_next: Mutex<VecDeque<u16>>,
    status_always: Mutex<Option<u16>>,
    handshake_next: Mutex<VecDeque<u16>>,
}

/// A route that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultRoute {
    /// `PUT …/agentic-sessions/{s}/status`.
    StatusUpdate,
    /// The WebSocket handshake.
    Handshake,
}

impl Faults {
    pub(crate) fn push(&self, route: FaultRoute, statuses: impl IntoIterator<Item = u16>) {
        let queue = match route {
            FaultRoute::StatusUpdate => &self.status_next,
            FaultRoute::Handshake => &self.handshake_next,
        };
        queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(statuses);
    }

    pub(crate) fn always(&self, status: Option<u16>) {
        *self
            .status_always
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = status;
    }

    /// The status the next call of `route` must fail with, if any.
    pub(crate) fn next(&self, route: FaultRoute) -> Option<u16> {
        match route {
            FaultRoute::StatusUpdate => {
                let queued = self
                    .status_next
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop_front();
                queued.or(*self
                    .status_always
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner))
            }
            FaultRoute::Handshake => self
                .handshake_next
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front(),
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
