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

    /// Wait until any of `conds` holds, each re-checked after a `wake_all` of its own list: one future and one slot
    /// per list, where a future per list would be an allocation each (a fetch waits on its 1,000 partitions).
    pub fn wait_until_any<F: Fn() -> bool + Unpin>(conds: Vec<(&WaitList, F)>) -> WaitAny<'_, F> {
        let slots = conds.iter().map(|_| None).collect();
        WaitAny { conds, slots }
    }

    fn register(&self, slot: &mut Option<usize>, waker: &Waker) {
        let mut slots = self.slots.borrow_mut();
        match *slot {
            // Re-polled by the same task with its waker still in place: nothing to do (a wait over many lists is
            // re-polled whenever any one of them wakes it).
            Some(k) if slots[k].as_ref().is_some_and(|w| w.will_wake(waker)) => {}
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

pub(crate) struct WaitAny<'a, F> {
    conds: Vec<(&'a WaitList, F)>,
    /// `slots[i]` is this waiter's slot in `conds[i]`'s list.
    slots: Vec<Option<usize>>,
}

impl<F> WaitAny<'_, F> {
    fn release_all(&mut self) {
        for ((list, _), slot) in self.conds.iter().zip(&mut self.slots) {
            list.release(slot);
        }
    }
}

impl<F: Fn() -> bool + Unpin> Future for WaitAny<'_, F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.conds.iter().any(|(_, cond)| cond()) {
            this.release_all();
            return Poll::Ready(());
        }
        for ((list, _), slot) in this.conds.iter().zip(&mut this.slots) {
            list.register(slot, cx.waker());
        }
        Poll::Pending
    }
}

impl<F> Drop for WaitAny<'_, F> {
    fn drop(&mut self) {
        self.release_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn poll_once(future: Pin<&mut impl Future<Output = ()>>) -> Poll<()> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    fn live(list: &WaitList) -> usize {
        list.slots.borrow().iter().filter(|s| s.is_some()).count()
    }

    #[test]
    fn a_wait_over_many_lists_takes_one_slot_each_and_gives_them_back() {
        let lists = [WaitList::default(), WaitList::default()];
        let ready = [Cell::new(false), Cell::new(false)];
        let (first, second) = (&lists[0], &lists[1]);
        let mut wait = std::pin::pin!(WaitList::wait_until_any(
            lists
                .iter()
                .zip(&ready)
                .map(|(list, ready)| (list, move || ready.get()))
                .collect()
        ));
        assert!(poll_once(wait.as_mut()).is_pending());
        assert_eq!((live(first), live(second)), (1, 1));
        // Woken by one list with its condition still false: pending, registered again there, one slot each still.
        first.wake_all();
        assert!(poll_once(wait.as_mut()).is_pending());
        assert!(
            poll_once(wait.as_mut()).is_pending(),
            "a re-poll by the same task"
        );
        assert_eq!((live(first), live(second)), (1, 1));
        ready[1].set(true);
        second.wake_all();
        assert!(poll_once(wait.as_mut()).is_ready());
        assert_eq!((live(first), live(second)), (0, 0));
        assert_eq!(
            first.free.borrow().len(),
            1,
            "the slot is free for the next waiter"
        );
    }

    #[test]
    fn a_dropped_wait_over_many_lists_frees_its_slots() {
        let lists = [WaitList::default(), WaitList::default()];
        {
            let never = || false;
            let mut wait = std::pin::pin!(WaitList::wait_until_any(
                lists.iter().map(|l| (l, never)).collect()
            ));
            assert!(poll_once(wait.as_mut()).is_pending());
        }
        for list in &lists {
            assert_eq!(live(list), 0);
            assert_eq!(list.free.borrow().len(), 1);
        }
    }
}
