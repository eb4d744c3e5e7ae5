//! The server in-process on a real socket, over a store on `SimStorage`, for
//! what the real binary cannot be made to do on demand: a full request
//! queue (503 with `Retry-After`) and a failing disk (500, then `/health`
//! 503 while queries still work).

use std::sync::Arc;
use std::time::Duration;

use ticketlog::storage::{Fault, FaultKind, OpKind, SimStorage};
use ticketlog::{Command, Options, Store, TicketDraft};

use super::config::ServeConfig;
use super::{Background, StoreFacts};
use ticketlog::{Durability, Retention};

/// A bound on every wait (a hang becomes a failure).
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// The server in this process, with a client for it.
struct InProcess {
    server: Background,
}

impl InProcess {
    fn start(store: &Store) -> InProcess {
        let config = ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            token: None,
            connections_max: 8,
            request_timeout: WAIT_LIMIT,
            sse_clients_max: 8,
            sse_heartbeat: Duration::from_secs(15),
        };
        InProcess {
            server: Background::start(
                store.client(),
                config,
                Some(StoreFacts::new(
                    store.recovery(),
                    Durability::Always,
                    Retention::KeepAll,
                )),
            )
            .unwrap(),
        }
    }

    /// (status, Retry-After, error code or "")
    fn send(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Option<String>, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(WAIT_LIMIT))
            .build()
            .into();
        let builder = ureq::http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.server.addr));
        let mut response = match body {
            Some(body) => agent.run(builder.body(body.to_owned()).unwrap()),
            None => agent.run(builder.body(()).unwrap()),
        }
        .unwrap();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.body_mut().read_to_string().unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let code = value["error"]["code"].as_str().unwrap_or("").to_owned();
        (response.status().as_u16(), retry_after, code)
    }
}

fn draft(title: &str) -> TicketDraft {
    TicketDraft {
        title: title.try_into().unwrap(),
        description: "d".try_into().unwrap(),
    }
}

const CREATE: &str = r#"{"title":"t","description":"d"}"#;

#[test]
fn a_full_request_queue_is_503_with_retry_after_and_writes_nothing() {
    let sim = SimStorage::new(1);
    let store = Store::open(
        "/sim/store",
        Options::default()
            .storage(Arc::new(sim.clone()))
            .channel_capacity(1),
    )
    .unwrap();
    let server = InProcess::start(&store);
    let client = store.client();

    // Stop the server thread inside a write, then fill the one-slot queue.
    let holds = sim.hold_file_writes();
    let writer = {
        let client = client.clone();
        std::thread::spawn(move || client.create(draft("first")))
    };
    let held = holds
        .next_within(WAIT_LIMIT)
        .expect("the first create's write");
    assert_eq!(held.op, OpKind::WriteAt);
    let queued = client.submit(Command::Create(draft("queued"))).unwrap();
    let log_before = sim.file_contents(&held.path);

    let (status, retry_after, code) = server.send("POST", "/tickets", Some(CREATE));
    assert_eq!((status, code.as_str()), (503, "overloaded"));
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(sim.file_contents(&held.path), log_before);

    drop(holds);
    writer.join().unwrap().unwrap();
    queued.wait().unwrap();
    let (status, _, _) = server.send("POST", "/tickets", Some(CREATE));
    assert_eq!(status, 201);
    drop(server);
    store.close().unwrap();
}

#[test]
fn a_failed_sync_is_500_then_health_is_503_and_queries_still_work() {
    let sim = SimStorage::new(2);
    let store = Store::open(
        "/sim/store",
        Options::default().storage(Arc::new(sim.clone())),
    )
    .unwrap();
    let server = InProcess::start(&store);
    assert_eq!(server.send("POST", "/tickets", Some(CREATE)).0, 201);
    assert_eq!(server.send("GET", "/health", None).0, 200);

    sim.inject(
        Fault::after(FaultKind::Eio, 0)
            .only(OpKind::SyncData)
            .persistent(),
    );
    let (status, _, code) = server.send("POST", "/tickets", Some(CREATE));
    assert_eq!((status, code.as_str()), (500, "storage_failure"));
    let (status, _, code) = server.send("PATCH", "/tickets/1", Some(r#"{"status":"done"}"#));
    assert_eq!((status, code.as_str()), (500, "storage_failure"));
    assert_eq!(server.send("GET", "/health", None).0, 503);
    assert_eq!(server.send("GET", "/tickets/1", None).0, 200);
    assert_eq!(server.send("GET", "/stats", None).0, 200);
    drop(server);
    // The store reports the failure on close too.
    assert!(store.close().is_err());
}
