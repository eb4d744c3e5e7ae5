//! `GET /events` of the real `ticketlog serve` on 127.0.0.1 with port 0:
//! the stream read incrementally over a raw socket (with read timeouts, so
//! nothing hangs), every event's data checked against `docs/openapi.json`
//! and against the same ticket's history, resumes with `from` and
//! `Last-Event-ID` that repeat and lose nothing (also inside a create-many
//! record), heartbeats, the stream limit, a compacted start, the token,
//! SIGTERM with a stream open, and a stalled stream that writers never
//! wait for.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ticketlog::{Options, Store, TicketDraft};

use crate::serve::{Http, Reply, Server, WAIT_LIMIT, check_schema, openapi};

// ------------------------------------------------------------ an SSE client

/// What the stream carried.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item {
    /// An event: its `id:`, `event:` and `data:` (parsed as JSON).
    Event {
        id: String,
        event: String,
        data: Value,
    },
    /// A comment line (a heartbeat), without its colon.
    Comment(String),
}

/// What waiting for the next item found.
#[derive(Debug)]
pub(crate) enum Next {
    Item(Item),
    TimedOut,
    /// The server ended the response (or closed the connection).
    Ended,
}

/// One open `GET /events` response, decoded as it arrives: HTTP/1.1
/// chunked framing, then SSE fields.
pub(crate) struct EventStream {
    socket: TcpStream,
    /// Bytes read but not yet de-chunked.
    raw: Vec<u8>,
    /// De-chunked bytes not yet parsed as SSE.
    text: Vec<u8>,
    ended: bool,
    api: Value,
}

impl EventStream {
    /// Opens `GET /events{query}` with `headers`; panics unless it answers
    /// 200 with a reply the document allows.
    pub(crate) fn open(url: &str, query: &str, headers: &[(&str, &str)]) -> EventStream {
        Self::try_open(url, query, headers)
            .unwrap_or_else(|(status, head)| panic!("GET /events{query}: {status}: {head}"))
    }

    /// Like [`Self::open`], but a reply other than 200 is given back as its
    /// status and head.
    fn try_open(
        url: &str,
        query: &str,
        headers: &[(&str, &str)],
    ) -> Result<EventStream, (u16, String)> {
        let host = url.strip_prefix("http://").expect("an http:// url");
        let mut socket = TcpStream::connect(host).expect("connect to serve");
        let mut request =
            format!("GET /events{query} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        socket.write_all(request.as_bytes()).unwrap();
        let mut stream = EventStream {
            socket,
            raw: Vec::new(),
            text: Vec::new(),
            ended: false,
            api: openapi(),
        };
        let deadline = Instant::now() + WAIT_LIMIT;
        let head_end = loop {
            if let Some(at) = find(&stream.raw, b"\r\n\r\n") {
                break at;
            }
            assert!(
                stream.fill(deadline),
                "the server closed before its reply's head: {:?}",
                String::from_utf8_lossy(&stream.raw)
            );
        };
        let head = String::from_utf8(stream.raw[..head_end].to_vec()).unwrap();
        stream.raw.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {head:?}"));
        let headers: BTreeMap<String, String> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        if status != 200 {
            return Err((status, head));
        }
        assert_eq!(
            headers.get("transfer-encoding").map(String::as_str),
            Some("chunked")
        );
        let reply = Reply {
            status,
            headers,
            body: String::new(),
        };
        if let Err(why) = crate::serve::check_reply(&stream.api, "GET", "/events", &reply) {
            panic!("GET /events: the reply does not match docs/openapi.json: {why}\n{reply:#?}");
        }
        Ok(stream)
    }

    /// Reads what the socket has, waiting until `deadline`; `false` once
    /// the connection is closed.
    fn fill(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        self.socket
            .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))
            .unwrap();
        let mut buffer = [0u8; 64 << 10];
        match self.socket.read(&mut buffer) {
            Ok(0) => false,
            Ok(n) => {
                self.raw.extend_from_slice(&buffer[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => true,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => false,
            Err(e) => panic!("reading the event stream: {e}"),
        }
    }

    /// Moves every whole chunk from `raw` to `text`.
    fn dechunk(&mut self) {
        while !self.ended {
            let Some(line_end) = find(&self.raw, b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).to_string();
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .unwrap_or_else(|_| panic!("a bad chunk size line {size_text:?}"));
            if size == 0 {
                self.ended = true;
                return;
            }
            let start = line_end + 2;
            if self.raw.len() < start + size + 2 {
                return;
            }
            assert_eq!(&self.raw[start + size..start + size + 2], b"\r\n");
            self.text.extend_from_slice(&self.raw[start..start + size]);
            self.raw.drain(..start + size + 2);
        }
    }

    /// One whole SSE message (up to a blank line) from `text`, if there is.
    fn parse_one(&mut self) -> Option<Item> {
        let end = find(&self.text, b"\n\n")?;
        let block = String::from_utf8(self.text[..end].to_vec()).expect("the stream is UTF-8");
        self.text.drain(..end + 2);
        let (mut id, mut event, mut data, mut comment) = (None, None, Vec::new(), None);
        for line in block.split('\n') {
            if let Some(text) = line.strip_prefix(':') {
                comment = Some(text.trim().to_owned());
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = Some(value.to_owned()),
                "event" => event = Some(value.to_owned()),
                "data" => data.push(value.to_owned()),
                other => panic!("an unknown SSE field {other:?} in {block:?}"),
            }
        }
        if data.is_empty() {
            return Some(Item::Comment(
                comment.unwrap_or_else(|| panic!("an empty SSE message: {block:?}")),
            ));
        }
        let data: Value = serde_json::from_str(&data.join("\n"))
            .unwrap_or_else(|e| panic!("data is not JSON ({e}): {block:?}"));
        let (Some(id), Some(event)) = (id, event) else {
            panic!("an event without id: or event: {block:?}");
        };
        Some(Item::Event { id, event, data })
    }

    /// The next item, waiting at most `timeout`.
    fn next_within(&mut self, timeout: Duration) -> Next {
        let deadline = Instant::now() + timeout;
        loop {
            self.dechunk();
            if let Some(item) = self.parse_one() {
                return Next::Item(item);
            }
            if self.ended {
                return Next::Ended;
            }
            if Instant::now() >= deadline {
                return Next::TimedOut;
            }
            if !self.fill(deadline) {
                self.ended = true;
            }
        }
    }

    /// The next event (heartbeats skipped): (id, event, data), the data
    /// checked against the document's Event schema and its `type` against
    /// the SSE event name.
    pub(crate) fn next_event(&mut self) -> (String, String, Value) {
        loop {
            match self.next_within(WAIT_LIMIT) {
                Next::Item(Item::Comment(_)) => {}
                Next::Item(Item::Event { id, event, data }) => {
                    let schema = json!({"$ref": "#/components/schemas/Event"});
                    if let Err(why) = check_schema(&self.api, &schema, &data, "$") {
                        panic!("event {id} does not match the Event schema: {why}\n{data}");
                    }
                    assert_eq!(data["type"], event.as_str(), "{id}: {data}");
                    return (id, event, data);
                }
                other => panic!("waiting for an event: {other:?}"),
            }
        }
    }

    /// The ids of the next `n` events.
    fn ids(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.next_event().0).collect()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

pub(crate) fn create(http: &Http, title: &str) -> u64 {
    let reply = http.post(
        "/tickets",
        &json!({"title": title, "description": "d"}).to_string(),
    );
    assert_eq!(reply.status, 201, "{reply:#?}");
    reply.json()["id"].as_u64().unwrap()
}

pub(crate) fn create_batch(http: &Http, titles: &[&str]) {
    let tickets: Vec<Value> = titles
        .iter()
        .map(|title| json!({"title": title, "description": "d"}))
        .collect();
    let reply = http.post("/tickets/batch", &json!({ "tickets": tickets }).to_string());
    assert_eq!(reply.status, 201, "{reply:#?}");
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|id| (*id).to_owned()).collect()
}

// ---------------------------------------------------------------- the tests

#[test]
fn events_arrive_in_log_order_with_their_positions_names_and_the_history_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = Http::new(&server);
    create(&http, "one");
    create_batch(&http, &["two", "three", "four"]);
    let patched = http.call(
        "PATCH",
        "/tickets/{id}",
        "/tickets/1",
        Some(r#"{"status":"in-progress"}"#),
        &[],
    );
    assert_eq!(patched.status, 200);
    let deleted = http.call("DELETE", "/tickets/{id}", "/tickets/3", None, &[]);
    assert_eq!(deleted.status, 200);

    let mut stream = EventStream::open(&server.url, "", &[]);
    let events: Vec<_> = (0..6).map(|_| stream.next_event()).collect();
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|(id, event, _)| (id.as_str(), event.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("1.0", "created"),
            ("2.0", "created"),
            ("2.1", "created"),
            ("2.2", "created"),
            ("3.0", "updated"),
            ("4.0", "deleted"),
        ]
    );
    // One representation: each event's data is the ticket's history entry.
    for (id, _, data) in &events {
        let lsn: u64 = id.split('.').next().unwrap().parse().unwrap();
        assert_eq!(data["lsn"], lsn, "{id}: {data}");
        let ticket = data["ticket_id"].as_u64().unwrap();
        let history = http.get(
            "/tickets/{id}/history",
            &format!("/tickets/{ticket}/history"),
        );
        if history.status == 200 {
            let entries = history.json()["events"].as_array().unwrap().clone();
            assert!(
                entries.contains(data),
                "{id}: {data} is not in ticket {ticket}'s history {entries:?}"
            );
        } else {
            // Ticket 3 was deleted: its history is gone with it.
            assert_eq!((ticket, history.status), (3, 404));
        }
    }
    assert_eq!(events[1].2["title"], "two");
    assert_eq!(events[4].2["status"], "in-progress");
    // Then live, as each command commits.
    create(&http, "five");
    let (id, event, data) = stream.next_event();
    assert_eq!((id.as_str(), event.as_str()), ("5.0", "created"));
    assert_eq!(data["title"], "five");
    let (status, stderr) = server.stop("TERM");
    assert!(status.success(), "{stderr}");
}

#[test]
fn a_reconnect_with_last_event_id_or_from_repeats_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = Http::new(&server);
    for title in ["a", "b", "c"] {
        create(&http, title);
    }
    create_batch(&http, &["d0", "d1", "d2", "d3"]);
    create(&http, "e");

    // Read up to the middle of the create-many record, then go away.
    let mut first = EventStream::open(&server.url, "", &[]);
    assert_eq!(first.ids(5), ids(&["1.0", "2.0", "3.0", "4.0", "4.1"]));
    drop(first);
    for title in ["f", "g", "h"] {
        create(&http, title);
    }
    let rest = ids(&["4.2", "4.3", "5.0", "6.0", "7.0", "8.0"]);

    // Last-Event-ID wins over from (a browser reopens its first URL).
    let mut resumed = EventStream::open(&server.url, "?from=1.0", &[("Last-Event-ID", "4.1")]);
    assert_eq!(resumed.ids(rest.len()), rest);
    // Exactly the rest: the next event is the next write, not a repeat.
    create(&http, "sentinel");
    assert_eq!(resumed.ids(1), ids(&["9.0"]));
    drop(resumed);

    let mut by_from = EventStream::open(&server.url, "?from=4.1", &[]);
    assert_eq!(
        by_from.ids(rest.len() + 1),
        [&rest[..], &ids(&["9.0"])].concat()
    );
    drop(by_from);
    // After the last event of a record, and after "every event of the
    // record" (its index as large as an index can be), as the console asks.
    for from in ["4.3", "4.4294967295"] {
        let mut after_record = EventStream::open(&server.url, &format!("?from={from}"), &[]);
        assert_eq!(after_record.ids(1), ids(&["5.0"]), "from={from}");
    }
    // After a restart too.
    let (status, stderr) = server.stop("TERM");
    assert!(status.success(), "{stderr}");
    let server = Server::start(dir.path(), &[]);
    let http = Http::new(&server);
    let mut after_restart = EventStream::open(&server.url, "", &[("Last-Event-ID", "8.0")]);
    create(&http, "after restart");
    assert_eq!(after_restart.ids(2), ids(&["9.0", "10.0"]));
}

#[test]
fn an_idle_stream_sends_heartbeat_comments_and_still_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--sse-heartbeat-ms", "50"]);
    let http = Http::new(&server);
    let mut stream = EventStream::open(&server.url, "", &[]);
    for _ in 0..3 {
        match stream.next_within(WAIT_LIMIT) {
            Next::Item(Item::Comment(text)) => assert_eq!(text, "heartbeat"),
            other => panic!("an idle stream sent {other:?}"),
        }
    }
    create(&http, "after the heartbeats");
    assert_eq!(stream.next_event().0, "1.0");
}

#[test]
fn past_the_stream_limit_a_stream_is_refused_503_until_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--sse-clients-max", "2", "--sse-heartbeat-ms", "50"],
    );
    let http = Http::new(&server);
    let one = EventStream::open(&server.url, "", &[]);
    let mut two = EventStream::open(&server.url, "", &[]);
    let refused = http.call("GET", "/events", "/events", None, &[]);
    assert_eq!(
        (refused.status, refused.error_code().as_str()),
        (503, "too_many_streams"),
        "{refused:#?}"
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
    // The rest of the API is not limited by it.
    assert_eq!(http.get("/stats", "/stats").status, 200);
    // A closed stream gives its place back once the server notices (at
    // its next heartbeat at the latest).
    drop(one);
    let deadline = Instant::now() + WAIT_LIMIT;
    let mut three = loop {
        match EventStream::try_open(&server.url, "", &[]) {
            Ok(stream) => break stream,
            Err((status, head)) => assert_eq!(status, 503, "{head}"),
        }
        assert!(
            Instant::now() < deadline,
            "the closed stream's place never came back"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Two open again: the limit holds.
    let refused = http.call("GET", "/events", "/events", None, &[]);
    assert_eq!(refused.status, 503, "{refused:#?}");
    create(&http, "seen by both");
    assert_eq!(two.next_event().0, "1.0");
    assert_eq!(three.next_event().0, "1.0");
}

#[test]
fn a_start_before_the_oldest_kept_record_is_410_compacted_with_the_oldest_position() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Compacted as the retention tests do: small segments, a snapshot,
        // more writes, then compact.
        let options = Options::default().segment_bytes(1024).snapshot_every(0);
        let store = Store::open(dir.path(), options).unwrap();
        let client = store.client();
        let draft = |i: usize| TicketDraft {
            title: format!("t{i}").try_into().unwrap(),
            description: "d".repeat(100).try_into().unwrap(),
        };
        for i in 0..60 {
            client.create(draft(i)).unwrap();
        }
        store.snapshot().unwrap();
        for i in 60..70 {
            client.create(draft(i)).unwrap();
        }
        let info = store.compact().unwrap();
        assert!(info.history_starts_at_lsn > 1, "{info:?}");
        store.close().unwrap();
    }
    let server = Server::start(dir.path(), &[]);
    let http = Http::new(&server);
    let mut oldest = None;
    for (path, headers) in [
        ("/events", vec![]),
        ("/events?from=1.0", vec![]),
        ("/events?from=99.0", vec![("Last-Event-ID", "2.0")]),
    ] {
        let reply = http.call("GET", "/events", path, None, &headers);
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (410, "compacted"),
            "{path}: {reply:#?}"
        );
        let position = reply.json()["error"]["oldest_position"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(*oldest.get_or_insert(position.clone()), position);
    }
    let oldest = oldest.unwrap();
    let (lsn, index) = oldest.split_once('.').unwrap();
    let lsn: u64 = lsn.parse().unwrap();
    assert_eq!(index, "0");
    assert!(lsn > 1, "{oldest}");
    // What the message says works: from just before the oldest record.
    let reply = http.call("GET", "/events", "/events?from=1.0", None, &[]);
    let start = format!("{}.4294967295", lsn - 1);
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("from={start}")),
        "{reply:#?}"
    );
    // (The snapshot covers every record compaction left: the next event
    // is the next write, at the oldest position.)
    let mut stream = EventStream::open(&server.url, &format!("?from={start}"), &[]);
    create(&http, "after compaction");
    let (first, _, data) = stream.next_event();
    assert_eq!(first, oldest);
    assert_eq!(data["lsn"], lsn);
}

#[test]
fn the_token_is_required_on_the_event_stream() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "open-sesame\n").unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--token-file", token_file.to_str().unwrap()],
    );
    let http = Http::new(&server);
    for headers in [vec![], vec![("Authorization", "Bearer open-sesamE")]] {
        let reply = http.call("GET", "/events", "/events", None, &headers);
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (401, "unauthorized")
        );
    }
    let auth = [("Authorization", "Bearer open-sesame")];
    let mut stream = EventStream::open(&server.url, "", &auth);
    let created = http.call(
        "POST",
        "/tickets",
        "/tickets",
        Some(r#"{"title":"t","description":"d"}"#),
        &auth,
    );
    assert_eq!(created.status, 201);
    assert_eq!(stream.next_event().0, "1.0");
}

#[test]
fn sigterm_with_open_streams_ends_them_and_exits_0_without_waiting_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = Http::new(&server);
    create(&http, "one");
    let mut streams: Vec<_> = (0..3)
        .map(|_| EventStream::open(&server.url, "", &[]))
        .collect();
    for stream in &mut streams {
        assert_eq!(stream.next_event().0, "1.0");
    }
    let (status, stderr) = server.stop("TERM");
    assert!(status.success(), "serve exited with {status}: {stderr}");
    assert!(stderr.contains("the store is closed"), "{stderr}");
    // The drain did not have to give up on a stream that stayed open.
    assert!(!stderr.contains("still open"), "{stderr}");
    for stream in &mut streams {
        match stream.next_within(WAIT_LIMIT) {
            Next::Ended => {}
            other => panic!("after SIGTERM the stream sent {other:?}"),
        }
    }
}

#[test]
fn a_stalled_stream_does_not_stop_writers_and_later_gets_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = Http::new(&server);
    // Never read while the writes go on: far more than the socket buffers
    // and a subscription's feed hold, so the stream must fall behind.
    let mut stalled = EventStream::open(&server.url, "", &[]);
    const BATCHES: usize = 400;
    const PER_BATCH: usize = 100;
    let description = "x".repeat(500);
    let mut acknowledged = 0;
    for batch in 0..BATCHES {
        let tickets: Vec<Value> = (0..PER_BATCH)
            .map(|i| json!({"title": format!("b{batch}-{i}"), "description": description}))
            .collect();
        let reply = http.post("/tickets/batch", &json!({ "tickets": tickets }).to_string());
        assert_eq!(reply.status, 201, "batch {batch}: {reply:#?}");
        acknowledged += PER_BATCH;
    }
    assert_eq!(acknowledged, BATCHES * PER_BATCH);
    // Now read it all: every event once, in log order.
    for batch in 0..BATCHES {
        for i in 0..PER_BATCH {
            let (id, _, data) = stalled.next_event();
            assert_eq!(id, format!("{}.{i}", batch + 1));
            assert_eq!(data["title"], format!("b{batch}-{i}"));
        }
    }
    create(&http, "sentinel");
    assert_eq!(stalled.next_event().0, format!("{}.0", BATCHES + 1));
}
