//! Event-driven waiting without polling: a waiter registers its waker here and is woken by the
//! event (commit, new data) that may satisfy its condition. A dropped waiter (e.g. timed out by
//! the caller) releases its slot at once, so the list stays bounded by the live waiters.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub(crate) struct WaitList {
    slots: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
}

impl WaitList {
    /// Wake every registered waiter; each re-checks its condition when polled.
    /// glommio's `wake` only queues the task, so no waiter runs while `slots` is borrowed.
    pub fn wake_all(&self) {
        for slot in self.slots.borrow_mut().iter_mut() {
            if let Some(w) = slot.take() {
                w.wake();
            }
        }
    }

    /// Resolve once `cond()` holds, re-checked after every `wake_all`.
    pub fn wait_until<F: Fn() -> bool + Unpin>(&self, cond: F) -> Wait<'_, F> {
        Wait {
            list: self,
            cond,
            slot: None,
        }
    }

    fn register(&self, slot: &mut Option<usize>, waker: &Waker) {
        let mut slots = self.slots.borrow_mut();
        match *slot {
            Some(k) => slots[k] = Some(waker.clone()),
            None => {
                let k = match self.free.borrow_mut().pop() {
                    Some(k) => k,
                    None => {
                        slots.push(None);
                        slots.len() - 1
                    }
                };
                slots[k] = Some(waker.clone());
                *slot = Some(k);
            }
        }
    }

    fn release(&self, slot: &mut Option<usize>) {
        if let Some(k) = slot.take() {
            self.slots.borrow_mut()[k] = None;
            self.free.borrow_mut().push(k);
        }
    }
}

pub(crate) struct Wait<'a, F> {
    list: &'a WaitList,
    cond: F,
    slot: Option<usize>,
}

impl<F: Fn() -> bool + Unpin> Future for Wait<'_, F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if (this.cond)() {
            this.list.release(&mut this.slot);
            return Poll::Ready(());
        }
        this.list.register(&mut this.slot, cx.waker());
        Poll::Pending
    }
}

impl<F> Drop for Wait<'_, F> {
    fn drop(&mut self) {
        self.list.release(&mut self.slot);
    }
}
