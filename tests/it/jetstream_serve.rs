//! `ticketlog serve` on the JetStream log: two real `serve` processes, each
//! with its own data directory, on one stream of the shared cluster, driven
//! by real HTTP and SSE clients on 127.0.0.1. What one host acknowledges,
//! the other host's reads, history and event stream show, in one order, and
//! `If-Match` holds across the hosts.

use std::time::Duration;

use serde_json::Value;

use crate::jetstream_common::{Watchdog, shared_cluster, stream_name};
use crate::serve::{Http, Server};
use crate::serve_events::{EventStream, create, create_batch};

/// Reads the next `n` events of `stream` as (id, event name, data).
fn next_events(stream: &mut EventStream, n: usize) -> Vec<(String, String, Value)> {
    (0..n).map(|_| stream.next_event()).collect()
}

#[test]
fn two_serve_hosts_on_one_stream_share_tickets_history_events_and_if_match() {
    let test = "two_serve_hosts_on_one_stream";
    let Some(urls) = shared_cluster(test) else {
        return;
    };
    let _watchdog = Watchdog::start(test, Duration::from_secs(180));
    let stream = stream_name("serve");
    let nats = urls.join(",");
    let log = ["--nats", nats.as_str(), "--stream", stream.as_str()];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let host_a = Server::start(dir_a.path(), &log);
    let host_b = Server::start(dir_b.path(), &log);
    let (http_a, http_b) = (Http::new(&host_a), Http::new(&host_b));
    let mut events_b = EventStream::open(&host_b.url, "", &[]);

    // Written through host a, seen live on host b's event stream, at the
    // positions host a's log gave them.
    assert_eq!(create(&http_a, "one"), 1);
    create_batch(&http_a, &["two", "three"]);
    let seen_b = next_events(&mut events_b, 3);
    let positions: Vec<(&str, &str)> = seen_b
        .iter()
        .map(|(id, event, _)| (id.as_str(), event.as_str()))
        .collect();
    assert_eq!(
        positions,
        [("1.0", "created"), ("2.0", "created"), ("2.1", "created")]
    );
    // Once host b has streamed an event, its reads include it.
    let on_b = http_b.get("/tickets/{id}", "/tickets/2");
    assert_eq!(on_b.status, 200, "{on_b:#?}");
    assert_eq!(on_b.json()["title"], "two");
    assert_eq!(on_b.header("etag"), Some("\"1\""));

    // An update through host b with the version it read; host a, asked at
    // once with the same (now stale) version, must refuse: its decision is
    // fenced on the stream, whether or not its tail has brought b's update.
    let patched = http_b.call(
        "PATCH",
        "/tickets/{id}",
        "/tickets/1",
        Some(r#"{"status":"in-progress"}"#),
        &[("If-Match", "\"1\"")],
    );
    assert_eq!(patched.status, 200, "{patched:#?}");
    assert_eq!(patched.json()["version"], 2);
    let stale = http_a.call(
        "PATCH",
        "/tickets/{id}",
        "/tickets/1",
        Some(r#"{"status":"done"}"#),
        &[("If-Match", "\"1\"")],
    );
    assert_eq!(stale.status, 412, "{stale:#?}");
    assert_eq!(stale.error_code(), "version_conflict");
    assert_eq!(stale.json()["error"]["current_version"], 2);
    // A delete through host a, of a ticket host b created nothing of.
    let deleted = http_a.call("DELETE", "/tickets/{id}", "/tickets/3", None, &[]);
    assert_eq!(deleted.status, 200, "{deleted:#?}");

    // Both hosts' event streams, read from the start, carry the same events
    // in the same order: the stream's.
    let tail_b = next_events(&mut events_b, 2);
    assert_eq!(
        tail_b
            .iter()
            .map(|(id, event, _)| (id.as_str(), event.as_str()))
            .collect::<Vec<_>>(),
        [("3.0", "updated"), ("4.0", "deleted")]
    );
    let all_b: Vec<_> = seen_b.into_iter().chain(tail_b).collect();
    let mut events_a = EventStream::open(&host_a.url, "", &[]);
    assert_eq!(next_events(&mut events_a, 5), all_b);
    // From the middle, as a reconnecting client asks.
    let mut resumed_a = EventStream::open(&host_a.url, "", &[("Last-Event-ID", "2.0")]);
    assert_eq!(next_events(&mut resumed_a, 3), all_b[2..]);

    // Both hosts have applied everything the streams showed: one history,
    // one list, one last LSN.
    let history_a = http_a.get("/tickets/{id}/history", "/tickets/1/history");
    let history_b = http_b.get("/tickets/{id}/history", "/tickets/1/history");
    assert_eq!(history_a.status, 200);
    assert_eq!(history_a.json(), history_b.json());
    assert_eq!(history_a.json()["events"].as_array().unwrap().len(), 2);
    let list_a = http_a.get("/tickets", "/tickets");
    let list_b = http_b.get("/tickets", "/tickets");
    assert_eq!(list_a.json(), list_b.json());
    let ids: Vec<u64> = list_a.json()["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2]);
    let stats_a = http_a.get("/stats", "/stats").json();
    let stats_b = http_b.get("/stats", "/stats").json();
    assert_eq!(stats_a["last_lsn"], 4, "{stats_a}");
    assert_eq!(stats_a["last_lsn"], stats_b["last_lsn"]);

    for host in [host_a, host_b] {
        let (status, stderr) = host.stop("TERM");
        assert!(status.success(), "serve on the stream: {stderr}");
    }
}
