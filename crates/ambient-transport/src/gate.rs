//! Polling the socket's read side only when it may have something.
//!
//! The socket task's `select!` polls every branch whenever any of them wakes it, which is
//! several times for each frame sent. tungstenite prepares its read buffer (zero-filling
//! it) before every read attempt, including one that finds nothing: most of the
//! runner's instructions went there. A [`Gated`] stream remembers whether the socket has
//! woken it since it last said it had nothing, and until it has, answers `Pending`
//! without touching the socket.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
};

use futures_util::{Stream, StreamExt, task::AtomicWaker};

/// Whether the inner stream has woken since it last returned `Pending`, and the task to
/// wake when it does.
#[derive(Debug)]
struct Gate {
    ready: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// A stream polled only after it has woken its task (or before it ever said `Pending`).
#[derive(Debug)]
pub(crate) struct Gated<S> {
    inner: S,
    gate: Arc<Gate>,
    /// Wakes the gate, which wakes the task: what the inner stream is polled with.
    waker: Waker,
}

impl<S> Gated<S> {
    pub(crate) fn new(inner: S) -> Self {
        let gate = Arc::new(Gate {
            ready: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(Arc::clone(&gate));
        Self { inner, gate, waker }
    }
}

impl<S: Stream + Unpin> Stream for Gated<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        self.gate.task.register(cx.waker());
        if !self.gate.ready.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = self.waker.clone();
        let mut inner_cx = Context::from_waker(&waker);
        let polled = self.inner.poll_next_unpin(&mut inner_cx);
        if polled.is_ready() {
            // More may be buffered already: the next poll reads on.
            self.gate.ready.store(true, Ordering::Release);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

    use std::sync::atomic::AtomicUsize;

    use tokio::sync::mpsc;

    use super::*;

    /// A stream that counts how often it is polled.
    struct Counted {
        inner: mpsc::Receiver<u32>,
        polls: Arc<AtomicUsize>,
    }

    impl Stream for Counted {
        type Item = u32;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u32>> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            self.inner.poll_recv(cx)
        }
    }

    #[tokio::test]
    async fn items_pass_and_a_poll_before_a_wake_does_not_reach_the_stream() {
        let (sender, receiver) = mpsc::channel::<u32>(4);
        let polls = Arc::new(AtomicUsize::new(0));
        let mut gated = Gated::new(Counted {
            inner: receiver,
            polls: Arc::clone(&polls),
        });
        sender.send(1).await.unwrap();
        assert_eq!(gated.next().await, Some(1));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        // Nothing waiting: this poll reaches the stream and gets `Pending`…
        assert!(Pin::new(&mut gated).poll_next(&mut cx).is_pending());
        let reached = polls.load(Ordering::Relaxed);
        // …and the next ones, before any wake, do not reach it.
        for _ in 0..10 {
            assert!(Pin::new(&mut gated).poll_next(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::Relaxed), reached);
        // A send wakes the gate, and the item comes through.
        sender.send(2).await.unwrap();
        assert_eq!(gated.next().await, Some(2));
        drop(sender);
        assert_eq!(gated.next().await, None);
    }
}
