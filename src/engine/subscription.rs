//! Subscriptions, engine side: the bounded [`Feed`] a subscriber reads
//! from, the server's list of live feeds and its fan-out after each durable
//! batch, and the catch-up read that fills a feed from the log on the
//! subscriber's own thread.
//!
//! Architecture invariant: the server never waits for a subscriber. It
//! offers each event of a committed batch to every live feed with a
//! non-blocking push; a feed that is full is closed as *lagged* and dropped
//! from the list, and its subscriber goes back to reading the log (off the
//! server thread) from the last event it saw. So a subscriber's memory is
//! at most [`FEED_EVENTS_MAX`] events, whatever it does.
//!
//! Architecture invariant: a feed carries only what is as durable as the
//! mode promises. The server fans a batch out after the log's `append`
//! returned (under `Always`, after its fsync); a catch-up reads through a
//! `LogReader` made between batches, which sees only appended records.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::domain::codec;
use crate::domain::event::{Event, Position};
use crate::error::{Damage, StorageError};
use crate::log::LogReader;

/// The most events a feed holds before its subscriber counts as lagging.
pub(crate) const FEED_EVENTS_MAX: usize = 4096;

/// What a feed carries.
#[derive(Debug)]
pub(crate) enum FeedItem {
    /// The next event.
    Event(Event),
    /// A catch-up read reached the end of what its reader could see.
    CaughtUp,
    /// A catch-up read failed.
    Failed(StorageError),
}

/// What taking from a feed found.
#[derive(Debug)]
pub(crate) enum Taken {
    /// The next item.
    Item(FeedItem),
    /// Nothing came before the deadline.
    TimedOut,
    /// The writer is gone and everything it wrote has been taken. `lagged`:
    /// it closed the feed because the subscriber fell behind.
    Ended { lagged: bool },
}

struct FeedState {
    queue: VecDeque<FeedItem>,
    /// The writer closed the feed (or was dropped).
    closed: bool,
    lagged: bool,
    /// The reader dropped the feed: a writer stops.
    reader_gone: bool,
    waker: Option<Waker>,
}

/// A bounded queue of events from one writer (the server, or a catch-up
/// thread) to one subscriber.
pub(crate) struct Feed {
    state: Mutex<FeedState>,
    /// Signalled when an item arrives or the feed closes.
    readable: Condvar,
    /// Signalled when room frees up or the reader goes.
    writable: Condvar,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Feed")
    }
}

impl Feed {
    /// A new feed and the handle that writes to it.
    pub(crate) fn new() -> (Arc<Feed>, FeedWriter) {
        let feed = Arc::new(Feed {
            state: Mutex::new(FeedState {
                queue: VecDeque::new(),
                closed: false,
                lagged: false,
                reader_gone: false,
                waker: None,
            }),
            readable: Condvar::new(),
            writable: Condvar::new(),
        });
        (Arc::clone(&feed), FeedWriter(feed))
    }

    fn lock(&self) -> MutexGuard<'_, FeedState> {
        // Every update under this lock leaves the state consistent, so a
        // poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wake(&self, state: &mut FeedState) {
        self.readable.notify_all();
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    fn take_ready(&self, state: &mut FeedState) -> Option<Taken> {
        if let Some(item) = state.queue.pop_front() {
            self.writable.notify_all();
            return Some(Taken::Item(item));
        }
        state.closed.then_some(Taken::Ended {
            lagged: state.lagged,
        })
    }

    /// Takes the next item, waiting until `deadline` (forever if `None`).
    pub(crate) fn take(&self, deadline: Option<Instant>) -> Taken {
        let mut state = self.lock();
        loop {
            if let Some(taken) = self.take_ready(&mut state) {
                return taken;
            }
            state = match deadline {
                None => self
                    .readable
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Taken::TimedOut;
                    }
                    self.readable
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0
                }
            };
        }
    }

    /// Takes the next item if there is one, else registers `cx`'s waker.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Taken> {
        let mut state = self.lock();
        if let Some(taken) = self.take_ready(&mut state) {
            return Poll::Ready(taken);
        }
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Items waiting in the feed.
    pub(crate) fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// The reader is done with the feed: a writer waiting for room stops.
    pub(crate) fn drop_reader(&self) {
        let mut state = self.lock();
        state.reader_gone = true;
        state.queue.clear();
        drop(state);
        self.writable.notify_all();
    }
}

/// The writing end of a [`Feed`]. Dropping it closes the feed, so a reader
/// never waits on a writer that is gone (a stopped server included).
#[derive(Debug)]
pub(crate) struct FeedWriter(Arc<Feed>);

impl FeedWriter {
    /// Offers `item` without waiting: `false` if the feed is full (the
    /// caller then closes it as lagged) or its reader is gone.
    pub(crate) fn try_push(&self, item: FeedItem) -> bool {
        let mut state = self.0.lock();
        if state.reader_gone || state.queue.len() >= FEED_EVENTS_MAX {
            return false;
        }
        state.queue.push_back(item);
        self.0.wake(&mut state);
        true
    }

    /// Pushes `item`, waiting for room: `false` if the reader is gone.
    /// Only for writers other than the server thread.
    pub(crate) fn push_wait(&self, item: FeedItem) -> bool {
        let mut state = self.0.lock();
        while !state.reader_gone && state.queue.len() >= FEED_EVENTS_MAX {
            state = self
                .0
                .writable
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if state.reader_gone {
            return false;
        }
        state.queue.push_back(item);
        self.0.wake(&mut state);
        true
    }

    /// Whether the reader has dropped the feed.
    pub(crate) fn reader_gone(&self) -> bool {
        self.0.lock().reader_gone
    }

    /// Closes the feed because its reader fell behind.
    pub(crate) fn close_lagged(self) {
        self.0.lock().lagged = true;
        // Drop closes it.
    }
}

impl Drop for FeedWriter {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.closed = true;
        self.0.wake(&mut state);
    }
}

/// The server's live feeds, and what it hands a new subscriber.
#[derive(Debug, Default)]
pub(crate) struct Subscribers {
    live: Vec<FeedWriter>,
}

impl Subscribers {
    /// Whether any feed is live (so the server collects a batch's events).
    pub(crate) fn any(&self) -> bool {
        !self.live.is_empty()
    }

    /// Registers a live feed.
    pub(crate) fn add(&mut self, feed: FeedWriter) {
        self.live.push(feed);
    }

    /// Offers a committed batch's events to every live feed, in order. A
    /// feed that cannot take them all is closed as lagged; one whose
    /// reader is gone is dropped. Never waits.
    pub(crate) fn fan_out(&mut self, events: &[Event]) {
        let mut index = 0;
        while index < self.live.len() {
            let feed = &self.live[index];
            let kept = !feed.reader_gone()
                && events
                    .iter()
                    .all(|event| feed.try_push(FeedItem::Event(event.clone())));
            if kept {
                index += 1;
            } else {
                self.live.swap_remove(index).close_lagged();
            }
        }
    }

    /// Closes every feed (the store is closing).
    pub(crate) fn close_all(&mut self) {
        self.live.clear();
    }
}

/// The first LSN a subscription resumed after `after` must read.
pub(crate) fn first_needed_lsn(after: Option<Position>) -> u64 {
    match after {
        None => 1,
        Some(p) if p.index == u32::MAX => p.lsn.saturating_add(1),
        Some(p) => p.lsn,
    }
}

/// Reads the log through `reader` from the first record `after` needs to
/// the reader's end, pushing every event after `after` into `feed`, then
/// [`FeedItem::CaughtUp`] (or [`FeedItem::Failed`]). Runs on its own
/// thread; waits for the subscriber whenever the feed is full.
pub(crate) fn catch_up(mut reader: Box<dyn LogReader>, after: Option<Position>, feed: FeedWriter) {
    let from = first_needed_lsn(after);
    let result = reader.read(from, &mut |record| {
        let changes =
            codec::decode_changes(record.payload).map_err(|reason| StorageError::Corrupt {
                path: format!("log record {}", record.lsn).into(),
                offset: record.place.offset,
                damage: Damage::Undecodable(reason),
            })?;
        for (index, change) in (0u32..).zip(changes) {
            let Some(event) = Event::from_change(record.lsn, index, change) else {
                continue;
            };
            if after.is_some_and(|after| event.position() <= after) {
                continue;
            }
            if !feed.push_wait(FeedItem::Event(event)) {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    });
    let last = match result {
        Ok(()) => FeedItem::CaughtUp,
        Err(error) => FeedItem::Failed(error),
    };
    let _ = feed.push_wait(last);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::change::Change;
    use crate::domain::ticket::TicketId;
    use crate::domain::time::Timestamp;

    fn event(lsn: u64) -> Event {
        Event::from_change(
            lsn,
            0,
            Change::Deleted {
                id: TicketId::from(1),
                version: 1,
                at: Timestamp::from_unix_millis(0),
            },
        )
        .unwrap()
    }

    #[test]
    fn a_full_feed_is_closed_as_lagged_and_the_fan_out_never_waits() {
        let mut subscribers = Subscribers::default();
        let (slow, writer) = Feed::new();
        subscribers.add(writer);
        let (fast, writer) = Feed::new();
        subscribers.add(writer);
        let mut taken = 0;
        for lsn in 1..=(FEED_EVENTS_MAX as u64 + 10) {
            subscribers.fan_out(&[event(lsn)]);
            if let Taken::Item(FeedItem::Event(e)) = fast.take(Some(Instant::now())) {
                assert_eq!(e.lsn, lsn);
                taken += 1;
            }
        }
        assert_eq!(taken, FEED_EVENTS_MAX + 10);
        assert_eq!(subscribers.live.len(), 1, "the slow feed was dropped");
        // The slow one holds exactly its bound, then reports the lag.
        let mut held = 0;
        loop {
            match slow.take(Some(Instant::now())) {
                Taken::Item(_) => held += 1,
                Taken::Ended { lagged } => {
                    assert!(lagged);
                    break;
                }
                Taken::TimedOut => panic!("a closed feed does not time out"),
            }
        }
        assert_eq!(held, FEED_EVENTS_MAX);
        subscribers.close_all();
        assert!(matches!(fast.take(None), Taken::Ended { lagged: false }));
    }

    #[test]
    fn positions_say_where_a_resumed_read_starts() {
        assert_eq!(first_needed_lsn(None), 1);
        assert_eq!(first_needed_lsn(Some(Position { lsn: 5, index: 0 })), 5);
        assert_eq!(
            first_needed_lsn(Some(Position {
                lsn: 5,
                index: u32::MAX
            })),
            6
        );
    }
}
