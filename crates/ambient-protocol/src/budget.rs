//! A byte budget: what the places that hold a peer's input may hold between them.
//!
//! A message taken in takes its bytes from the budget ([`ByteBudget::try_take`]) and
//! gives them back when what it became is dropped ([`Held`]): the budget travels with
//! the message from the socket to the adapter's own queue, so that a peer that sends
//! faster than the agent works is refused past the budget, whoever holds the backlog.
//! No IO, no waiting: a caller that cannot take refuses, and says so.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

/// A budget of bytes, shared by its clones.
#[derive(Debug, Clone)]
pub struct ByteBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    /// The least anything takes, so that many small things are bounded too.
    floor: usize,
    used: AtomicUsize,
}

/// Bytes taken from a [`ByteBudget`], given back when dropped.
#[derive(Debug)]
pub struct Held {
    inner: Arc<Inner>,
    bytes: usize,
}

impl ByteBudget {
    /// A budget of `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                capacity,
                floor: 1,
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// A budget of `capacity` bytes that holds at most `count` things: each takes at
    /// least `capacity / count`.
    pub fn holding_at_most(capacity: usize, count: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                capacity,
                floor: (capacity / count.max(1)).max(1),
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// Its size.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// The bytes held now.
    pub fn used(&self) -> usize {
        self.inner.used.load(Ordering::Acquire)
    }

    /// Takes `bytes` (at least the budget's floor), or `None` when that would exceed the
    /// budget.
    pub fn try_take(&self, bytes: usize) -> Option<Held> {
        let bytes = bytes.max(self.inner.floor);
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|total| *total <= self.inner.capacity)
            })
            .ok()?;
        Some(Held {
            inner: Arc::clone(&self.inner),
            bytes,
        })
    }
}

impl Held {
    /// The bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.inner.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_taken_are_given_back_when_dropped_and_the_budget_is_never_exceeded() {
        let budget = ByteBudget::new(10);
        let a = budget.try_take(6);
        assert!(a.is_some());
        assert!(budget.try_take(5).is_none(), "11 of 10 bytes");
        let b = budget.clone().try_take(4);
        assert_eq!(budget.used(), 10);
        drop(a);
        assert_eq!(budget.used(), 4);
        assert!(budget.try_take(6).is_some());
        drop(b);
        assert_eq!(budget.used(), 0);
        assert!(
            budget.try_take(11).is_none(),
            "larger than the whole budget"
        );
        assert_eq!(budget.try_take(0).map(|held| held.bytes()), Some(1));
    }

    #[test]
    fn a_budget_for_a_count_of_things_takes_a_share_from_each_small_one() {
        let budget = ByteBudget::holding_at_most(1000, 4);
        let small: Vec<Held> = (0..4).filter_map(|_| budget.try_take(3)).collect();
        assert_eq!(small.len(), 4);
        assert!(budget.try_take(1).is_none(), "a fifth small thing");
        drop(small);
        assert_eq!(budget.try_take(900).map(|held| held.bytes()), Some(900));
    }
}
