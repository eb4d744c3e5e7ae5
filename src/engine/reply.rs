//! The one-shot reply channel each request carries: the server sends one
//! value, the client waits for it — by blocking, with a timeout, or as a
//! [`Future`] polled by any executor (no runtime in the library).
//!
//! Invariant: a receiver always learns the outcome. Either the value
//! arrives, or the sender is dropped unsent (the server stopped, or dropped
//! the request), and every way of waiting returns `None` instead of hanging.
//!
//! Cost on the sending side (the server thread, once per request): one lock
//! round that stores the value and marks the slot done together, and a wake
//! only for a receiver that is actually blocked (`waiting`) or polled (a
//! waker) — a receiver that has not started waiting yet finds the value
//! when it does, with no futex call on either side.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

struct Slot<T> {
    value: Option<T>,
    /// The sender sent its value or was dropped: nothing more will come.
    done: bool,
    /// A thread is blocked on `ready` (set and cleared under the lock), so
    /// the sender must notify it.
    waiting: bool,
    waker: Option<Waker>,
}

struct Shared<T> {
    slot: Mutex<Slot<T>>,
    ready: Condvar,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        // A panic while holding this lock leaves a consistent slot (every
        // update is a single assignment), so a poisoned lock is still usable.
        self.slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The sending half: used once. `None` once sent.
pub(crate) struct ReplySender<T>(Option<Arc<Shared<T>>>);

/// The receiving half.
pub(crate) struct ReplyReceiver<T>(Arc<Shared<T>>);

/// A new reply channel.
pub(crate) fn reply_channel<T>() -> (ReplySender<T>, ReplyReceiver<T>) {
    let shared = Arc::new(Shared {
        slot: Mutex::new(Slot {
            value: None,
            done: false,
            waiting: false,
            waker: None,
        }),
        ready: Condvar::new(),
    });
    (
        ReplySender(Some(Arc::clone(&shared))),
        ReplyReceiver(shared),
    )
}

/// Marks the slot done (with `value`, if any) in one lock round, then wakes
/// whoever waits for it.
fn finish<T>(shared: &Shared<T>, value: Option<T>) {
    let mut slot = shared.lock();
    if value.is_some() {
        slot.value = value;
    }
    slot.done = true;
    let waiting = slot.waiting;
    let waker = slot.waker.take();
    drop(slot);
    if waiting {
        shared.ready.notify_all();
    }
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl<T> ReplySender<T> {
    /// Sends the reply. A receiver that stopped waiting is not an error, so
    /// this returns `Err(value)` only to mirror `mpsc`; callers ignore it.
    pub(crate) fn send(mut self, value: T) -> Result<(), T> {
        let Some(shared) = self.0.take() else {
            return Err(value);
        };
        if Arc::strong_count(&shared) == 1 {
            return Err(value);
        }
        finish(&shared, Some(value));
        Ok(())
    }
}

impl<T> Drop for ReplySender<T> {
    fn drop(&mut self) {
        // Dropped unsent: the receiver learns that nothing will come.
        if let Some(shared) = self.0.take() {
            finish(&shared, None);
        }
    }
}

impl<T> ReplyReceiver<T> {
    /// Blocks until the reply arrives; `None` if the sender was dropped unsent.
    pub(crate) fn wait(self) -> Option<T> {
        let mut slot = self.0.lock();
        while !slot.done {
            slot.waiting = true;
            slot = self
                .0
                .ready
                .wait(slot)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        slot.waiting = false;
        slot.value.take()
    }

    /// Waits at most `timeout`: `Err(self)` if nothing came in time, else
    /// what [`Self::wait`] would return.
    pub(crate) fn wait_timeout(self, timeout: Duration) -> Result<Option<T>, Self> {
        // A timeout too long for an `Instant` (a caller's `Duration::MAX`)
        // is no deadline at all.
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            return Ok(self.wait());
        };
        let mut slot = self.0.lock();
        while !slot.done {
            let now = Instant::now();
            if now >= deadline {
                slot.waiting = false;
                drop(slot);
                return Err(self);
            }
            slot.waiting = true;
            slot = self
                .0
                .ready
                .wait_timeout(slot, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        slot.waiting = false;
        Ok(slot.value.take())
    }

    /// Polls for the reply, registering `cx`'s waker if it has not come.
    pub(crate) fn poll_reply(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = self.0.lock();
        if slot.done {
            return Poll::Ready(slot.value.take());
        }
        match &slot.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Future for ReplyReceiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().poll_reply(cx)
    }
}

impl<T> std::fmt::Debug for ReplyReceiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplyReceiver")
    }
}

impl<T> std::fmt::Debug for ReplySender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplySender")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_timeout_past_what_an_instant_holds_waits_without_a_deadline() {
        // `Instant::now() + Duration::MAX` used to panic.
        let (tx, rx) = reply_channel();
        tx.send(5).unwrap();
        assert_eq!(rx.wait_timeout(Duration::MAX).ok(), Some(Some(5)));
    }

    #[test]
    fn a_reply_arrives_by_blocking_and_by_polling() {
        let (tx, rx) = reply_channel();
        std::thread::spawn(move || {
            let _ = tx.send(7);
        });
        assert_eq!(rx.wait(), Some(7));

        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        let (tx, mut rx) = reply_channel();
        assert_eq!(rx.poll_reply(&mut cx), Poll::Pending);
        tx.send(8).unwrap();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "the waker was woken");
        assert_eq!(rx.poll_reply(&mut cx), Poll::Ready(Some(8)));
    }

    /// The sender notifies only a receiver that is blocked: one that blocked
    /// before the send (or the drop), in `wait` or `wait_timeout`, is still
    /// woken, and promptly.
    #[test]
    fn a_receiver_blocked_before_the_send_is_woken() {
        for (timed, sends) in [(false, true), (true, true), (false, false), (true, false)] {
            let (tx, rx) = reply_channel::<u32>();
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let got = if timed {
                    rx.wait_timeout(Duration::from_secs(60)).unwrap()
                } else {
                    rx.wait()
                };
                let _ = done_tx.send(got);
            });
            // Until the receiver is seen blocked, or 10 s.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !tx.0.as_ref().unwrap().lock().waiting && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(
                tx.0.as_ref().unwrap().lock().waiting,
                "the receiver blocked"
            );
            if sends {
                tx.send(9).unwrap();
            } else {
                drop(tx);
            }
            let got = done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(got, sends.then_some(9), "timed {timed}, sends {sends}");
        }
    }

    #[test]
    fn a_dropped_sender_ends_every_wait_with_none() {
        let (tx, rx) = reply_channel::<u32>();
        drop(tx);
        assert_eq!(rx.wait(), None);
        let (tx, rx) = reply_channel::<u32>();
        let rx = rx.wait_timeout(Duration::from_millis(5)).unwrap_err();
        drop(tx);
        assert_eq!(rx.wait_timeout(Duration::from_secs(5)).unwrap(), None);
    }

    #[test]
    fn sending_to_a_receiver_that_is_gone_hands_the_value_back() {
        let (tx, rx) = reply_channel::<u32>();
        drop(rx);
        assert_eq!(tx.send(3), Err(3));
    }
}
