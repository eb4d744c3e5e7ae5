//! [`Subscription`]: following every committed event, first from the log,
//! then live.
//!
//! A subscription holds at most two bounded feeds: a catch-up feed, filled
//! from the log by a thread of its own, and the live feed the server pushes
//! each durable batch into. The server never waits for it: if the live
//! feed fills up, the server closes it as lagged and the subscription
//! starts over from the last event it delivered — a new catch-up from the
//! log, a new live feed — so no event is lost or repeated and memory stays
//! bounded whatever the subscriber does.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use crate::api::client::Client;
use crate::domain::event::{Event, Position};
use crate::engine::reply::ReplyReceiver;
use crate::engine::request::{ClientError, Subscribed};
use crate::engine::subscription::{self, Feed, FeedItem, Taken};

/// Every committed event of every ticket, in log order: an iterator that
/// blocks for the next one, with [`Self::next_timeout`] to wait at most so
/// long and [`Self::next_event`] to `.await` it.
///
/// Each [`Event::position`] is exact (a create-many record carries several
/// events under one LSN); [`Client::subscribe_after`] with the last one seen
/// resumes without a gap or a duplicate, across restarts too. The
/// iterator's last item is `Err(ClientError::Closed)` when the store
/// closes, after every event committed before the close.
///
/// ```
/// use ticketlog::{Options, Store, TicketDraft};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path(), Options::default())?;
/// let client = store.client();
/// client.create(TicketDraft {
///     title: "First".try_into()?,
///     description: "Caught up from the log.".try_into()?,
/// })?;
/// let mut events = client.subscribe(0)?;
/// client.create(TicketDraft {
///     title: "Second".try_into()?,
///     description: "Delivered live.".try_into()?,
/// })?;
/// let first = events.next().unwrap()?;
/// let second = events.next().unwrap()?;
/// assert_eq!((first.lsn, second.lsn), (1, 2));
///
/// // Later, or after a restart: resume exactly after the last one seen.
/// let mut resumed = client.subscribe_after(first.position())?;
/// assert_eq!(resumed.next().unwrap()?.position(), second.position());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Subscription {
    client: Client,
    /// The position of the last event delivered (or asked to resume after).
    after: Option<Position>,
    catch_up: Option<Arc<Feed>>,
    live: Option<Arc<Feed>>,
    /// An async restart waiting for the server's answer.
    requested: Option<ReplyReceiver<Result<Subscribed, ClientError>>>,
    ended: bool,
}

/// One step of the state machine: an item to deliver, nothing yet, or a
/// feed to (re)request.
enum Step {
    Deliver(Result<Event, ClientError>),
    TimedOut,
    Continue,
}

impl Subscription {
    pub(crate) fn start(client: Client, after: Option<Position>) -> Result<Self, ClientError> {
        let mut subscription = Subscription {
            client,
            after,
            catch_up: None,
            live: None,
            requested: None,
            ended: false,
        };
        let answer = subscription.client.request_feed(after)?;
        let subscribed = answer.wait().ok_or(ClientError::Closed)??;
        subscription.attach(subscribed)?;
        Ok(subscription)
    }

    /// The position of the last event delivered (where a resumed
    /// subscription would start after), if any.
    pub fn position(&self) -> Option<Position> {
        self.after
    }

    /// Events waiting in this subscription's feeds (for tests that count
    /// what a stalled subscriber holds; not a stable API).
    #[doc(hidden)]
    pub fn buffered_events(&self) -> usize {
        [&self.catch_up, &self.live]
            .into_iter()
            .flatten()
            .map(|feed| feed.len())
            .sum()
    }

    /// Waits at most `timeout` for the next event: `None` if none came in
    /// time (the subscription goes on), `Some(Err(Closed))` once the store
    /// has closed.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<Event, ClientError>> {
        // A timeout too long for an `Instant` (`Duration::MAX`) is no
        // deadline at all.
        self.next_until(Instant::now().checked_add(timeout))
    }

    /// The next event, for async code: a future any executor can poll (the
    /// server thread wakes it). `None` after the subscription ended.
    pub fn next_event(&mut self) -> NextEvent<'_> {
        NextEvent { subscription: self }
    }

    /// Starts reading from the server's answer: a catch-up thread over the
    /// reader (if there is anything to catch up) and the live feed.
    fn attach(&mut self, (reader, live): Subscribed) -> Result<(), ClientError> {
        self.live = Some(live);
        self.catch_up = None;
        if reader.end_lsn() > subscription::first_needed_lsn(self.after) {
            let (feed, writer) = Feed::new();
            let after = self.after;
            thread::Builder::new()
                .name("ticketlog-catch-up".into())
                .spawn(move || subscription::catch_up(reader, after, writer))
                .map_err(|e| {
                    ClientError::Storage(crate::error::StorageError::io(
                        "spawn catch-up thread",
                        "subscription",
                        e,
                    ))
                })?;
            self.catch_up = Some(feed);
        }
        Ok(())
    }

    fn deliver(&mut self, event: Event) -> Step {
        if self.after.is_some_and(|after| event.position() <= after) {
            // The live feed starts where the catch-up ends; after a lagged
            // restart, or when resuming inside a record, skip what was seen.
            return Step::Continue;
        }
        self.after = Some(event.position());
        Step::Deliver(Ok(event))
    }

    fn end(&mut self, error: ClientError) -> Step {
        self.ended = true;
        self.drop_feeds();
        Step::Deliver(Err(error))
    }

    fn drop_feeds(&mut self) {
        for feed in [self.catch_up.take(), self.live.take()]
            .into_iter()
            .flatten()
        {
            feed.drop_reader();
        }
    }

    /// What an item taken from the catch-up feed means.
    fn on_catch_up(&mut self, taken: Taken) -> Step {
        match taken {
            Taken::Item(FeedItem::Event(event)) => self.deliver(event),
            Taken::Item(FeedItem::CaughtUp) => {
                self.catch_up = None;
                Step::Continue
            }
            Taken::Item(FeedItem::Failed(error)) => self.end(ClientError::Storage(error)),
            Taken::TimedOut => Step::TimedOut,
            // The catch-up thread stopped without finishing: start over.
            Taken::Ended { .. } => {
                self.drop_feeds();
                Step::Continue
            }
        }
    }

    /// What an item taken from the live feed means.
    fn on_live(&mut self, taken: Taken) -> Step {
        match taken {
            Taken::Item(FeedItem::Event(event)) => self.deliver(event),
            Taken::Item(FeedItem::CaughtUp | FeedItem::Failed(_)) => Step::Continue,
            Taken::TimedOut => Step::TimedOut,
            // Fell behind: read the log again from the last event delivered.
            Taken::Ended { lagged: true } => {
                self.drop_feeds();
                Step::Continue
            }
            Taken::Ended { lagged: false } => self.end(ClientError::Closed),
        }
    }

    fn next_until(&mut self, deadline: Option<Instant>) -> Option<Result<Event, ClientError>> {
        loop {
            if self.ended {
                return None;
            }
            let step = if let Some(feed) = self.catch_up.clone() {
                self.on_catch_up(feed.take(deadline))
            } else if let Some(feed) = self.live.clone() {
                self.on_live(feed.take(deadline))
            } else {
                // Restart after a lag.
                match self.client.request_feed(self.after) {
                    Err(error) => self.end(error),
                    Ok(answer) => match answer.wait() {
                        None => self.end(ClientError::Closed),
                        Some(Err(error)) => self.end(error),
                        Some(Ok(subscribed)) => match self.attach(subscribed) {
                            Ok(()) => Step::Continue,
                            Err(error) => self.end(error),
                        },
                    },
                }
            };
            match step {
                Step::Deliver(item) => return Some(item),
                Step::TimedOut => return None,
                Step::Continue => {}
            }
        }
    }

    fn poll_next_event(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Event, ClientError>>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            let step = if let Some(feed) = self.catch_up.clone() {
                match feed.poll_take(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(taken) => self.on_catch_up(taken),
                }
            } else if let Some(feed) = self.live.clone() {
                match feed.poll_take(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(taken) => self.on_live(taken),
                }
            } else if let Some(requested) = self.requested.as_mut() {
                match requested.poll_reply(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(answer) => {
                        self.requested = None;
                        match answer {
                            None => self.end(ClientError::Closed),
                            Some(Err(error)) => self.end(error),
                            Some(Ok(subscribed)) => match self.attach(subscribed) {
                                Ok(()) => Step::Continue,
                                Err(error) => self.end(error),
                            },
                        }
                    }
                }
            } else {
                // Never waits for room in the request channel: this runs on
                // an async worker (a full channel hands the send to a thread).
                match self.client.request_feed_handed_off(self.after) {
                    Ok(answer) => {
                        self.requested = Some(answer);
                        Step::Continue
                    }
                    Err(error) => self.end(error),
                }
            };
            match step {
                Step::Deliver(item) => return Poll::Ready(Some(item)),
                Step::TimedOut | Step::Continue => {}
            }
        }
    }
}

impl Iterator for Subscription {
    type Item = Result<Event, ClientError>;

    /// Blocks for the next event; `None` after the subscription ended.
    fn next(&mut self) -> Option<Self::Item> {
        self.next_until(None)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // The server drops a feed whose reader is gone at its next batch,
        // and a catch-up thread stops at its next event.
        self.drop_feeds();
    }
}

impl Client {
    /// Every committed event of every ticket, in log order, from the record
    /// at `from_lsn` on (0 or 1: from the first record): first caught up
    /// from the log, then live. Only what is durable under the store's
    /// durability mode is delivered. See [`Subscription`].
    ///
    /// Fails with [`ClientError::Compacted`] if compaction removed records
    /// at or after `from_lsn`.
    pub fn subscribe(&self, from_lsn: u64) -> Result<Subscription, ClientError> {
        Subscription::start(self.clone(), Position::before_lsn(from_lsn))
    }

    /// Every committed event after `position` (an [`Event::position`] seen
    /// earlier, perhaps before a restart): resumes without a gap or a
    /// duplicate.
    pub fn subscribe_after(&self, position: Position) -> Result<Subscription, ClientError> {
        Subscription::start(self.clone(), Some(position))
    }
}

/// The future [`Subscription::next_event`] returns.
#[derive(Debug)]
#[must_use = "a future does nothing unless polled"]
pub struct NextEvent<'a> {
    subscription: &'a mut Subscription,
}

impl Future for NextEvent<'_> {
    type Output = Option<Result<Event, ClientError>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().subscription.poll_next_event(cx)
    }
}
