//! Helpers the JetStream tests share (`jetstream.rs`, `jetstream_faults.rs`):
//! the shared cluster, clusters of a test's own, stores on a stream, load,
//! the JetStream API over the plain NATS text protocol, and the snapshot
//! bucket through the NATS client.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use async_nats::jetstream::object_store::{ObjectMetadata, ObjectStore};
use tokio::io::AsyncReadExt;

use ticketlog::{
    ClientError, JetStreamOptions, ListQuery, LogBackend, Options, Store, Ticket, TicketId,
};

use crate::common::draft;

/// The shared cluster's URLs, or `None` (and why) when the tests cannot run.
pub fn shared_cluster(test: &str) -> Option<Vec<String>> {
    match std::env::var("TICKETLOG_NATS_URL") {
        Ok(urls) if !urls.trim().is_empty() => {
            Some(urls.split(',').map(|u| u.trim().to_string()).collect())
        }
        _ => {
            eprintln!(
                "{test}: skipped: TICKETLOG_NATS_URL is unset. Install the server with \
                 `python3 -m pip install --no-deps --require-hashes -r .ci/requirements-nats.txt`, \
                 start a cluster with `.ci/nats-cluster.sh start target/nats 4222`, and set \
                 TICKETLOG_NATS_URL=$(.ci/nats-cluster.sh urls target/nats)"
            );
            None
        }
    }
}

/// A stream name no other test or run uses.
pub fn stream_name(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{test}_{}_{nanos}", std::process::id())
}

/// Options for the JetStream log on `stream`, with an in-doubt `deadline`.
pub fn jetstream(urls: &[String], stream: &str, deadline: Duration) -> Options {
    Options::default()
        .snapshot_every(0)
        .log_backend(LogBackend::JetStream(
            JetStreamOptions::new(urls.iter().cloned(), stream).in_doubt_deadline(deadline),
        ))
}

/// Opens a host on `stream` (15 s in-doubt deadline), panicking on failure.
pub fn open(dir: &Path, urls: &[String], stream: &str) -> Store {
    Store::open(dir, jetstream(urls, stream, Duration::from_secs(15))).expect("open on JetStream")
}

/// Every ticket, in id order.
pub fn all_tickets(store: &Store) -> Vec<Ticket> {
    store
        .client()
        .list(ListQuery::default())
        .expect("list tickets")
}

/// Waits (bounded) until `store` has applied at least `tickets` tickets'
/// worth of ids, that is, caught up with what the other hosts acknowledged.
pub fn wait_for_next_id(store: &Store, next_id: TicketId, within: Duration) {
    let started = Instant::now();
    loop {
        let stats = store.client().stats().expect("stats");
        if stats.next_id >= next_id {
            return;
        }
        assert!(
            started.elapsed() < within,
            "the store did not catch up to id {next_id} within {within:?} (at {})",
            stats.next_id
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A 3-node cluster of a test's own, stopped when dropped.
pub struct OwnCluster {
    /// The cluster's directory (configs, stores, logs, pid files).
    pub dir: tempfile::TempDir,
    /// The three nodes' client URLs.
    pub urls: Vec<String>,
}

/// The cluster script.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/nats-cluster.sh")
}

impl OwnCluster {
    pub fn start(base_port: u16) -> OwnCluster {
        Self::start_with(base_port, false)
    }

    /// A cluster whose nodes reach each other only through the route
    /// proxies of [`crate::route_proxy::RouteProxies`] (started first).
    pub fn start_through_proxies(base_port: u16) -> OwnCluster {
        Self::start_with(base_port, true)
    }

    fn start_with(base_port: u16, proxied: bool) -> OwnCluster {
        let dir = tempfile::tempdir().expect("cluster directory");
        let status = Command::new("bash")
            .arg(script())
            .args(["start"])
            .arg(dir.path())
            .arg(base_port.to_string())
            .env("NATS_ROUTE_PROXIES", if proxied { "1" } else { "0" })
            .status()
            .expect("run .ci/nats-cluster.sh");
        let urls = (0..3)
            .map(|i| format!("nats://127.0.0.1:{}", base_port + i))
            .collect();
        // Made before the check, so that a failed start (a port in use)
        // still stops, when dropped, the nodes that did start: left running
        // they held the ports and failed every later run.
        let cluster = OwnCluster { dir, urls };
        assert!(status.success(), "the test cluster did not start");
        cluster
    }

    pub fn run(&self, verb: &str, node: Option<u32>) {
        let mut command = Command::new("bash");
        command.arg(script()).arg(verb).arg(self.dir.path());
        if let Some(node) = node {
            command.arg(node.to_string());
        }
        let status = command.status().expect("run .ci/nats-cluster.sh");
        assert!(status.success(), ".ci/nats-cluster.sh {verb} failed");
    }

    pub fn kill(&self, node: u32) {
        self.run("kill", Some(node));
    }

    pub fn restart(&self, node: u32) {
        self.run("restart", Some(node));
    }

    pub fn stop(&self) {
        self.run("stop", None);
    }

    /// The process id of node `node` (1..=3), from the script's pid file.
    pub fn pid(&self, node: u32) -> u32 {
        let path = self.dir.path().join(format!("n{node}.pid"));
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or_else(|| panic!("no pid in {}", path.display()))
    }

    /// How many client connections node `node` (1..=3) has, from its
    /// monitoring endpoint (`/connz`); `None` if it does not answer.
    pub fn client_connections(&self, node: u32) -> Option<u64> {
        let base: u32 = std::fs::read_to_string(self.dir.path().join("base_port"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let output = Command::new("curl")
            .args(["-fsS", "--max-time", "2"])
            .arg(format!("http://127.0.0.1:{}/connz", base + 200 + node - 1))
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        let at = text.find("\"num_connections\":")? + "\"num_connections\":".len();
        text[at..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    }

    /// Sends `signal` ("STOP", "CONT", ...) to node `node`.
    pub fn signal(&self, node: u32, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid(node).to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} node {node} failed");
    }

    /// Waits (bounded) until all three nodes report healthy; returns how long.
    pub fn wait_healthy(&self, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let healthy = Command::new("bash")
                .arg(script())
                .arg("check")
                .arg(self.dir.path())
                .status()
                .is_ok_and(|s| s.success());
            if healthy {
                return started.elapsed();
            }
            if started.elapsed() >= within {
                for node in 1..=3 {
                    let log = std::fs::read_to_string(self.dir.path().join(format!("n{node}.log")))
                        .unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(8).collect();
                    eprintln!(
                        "n{node}.log, last lines (newest first):\n{}",
                        tail.join("\n")
                    );
                }
                panic!("the cluster was not healthy again within {within:?}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// Runs `clients` threads per store, each creating tickets until `stop` is
/// set or `per_client` are acknowledged; returns every acknowledged ticket
/// and every error.
pub fn create_load(
    stores: &[&Store],
    clients: usize,
    per_client: usize,
    stop: &Arc<AtomicBool>,
) -> (Vec<Ticket>, Vec<ClientError>) {
    thread::scope(|scope| {
        let mut workers = Vec::new();
        for (host, store) in stores.iter().enumerate() {
            for client_index in 0..clients {
                let client = store.client();
                let stop = Arc::clone(stop);
                workers.push(scope.spawn(move || {
                    let mut acked = Vec::new();
                    let mut errors = Vec::new();
                    for i in 0..per_client {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        match client.create(draft(&format!("h{host} c{client_index} #{i}"))) {
                            Ok(ticket) => acked.push(ticket),
                            Err(error) => errors.push(error),
                        }
                    }
                    (acked, errors)
                }));
            }
        }
        let mut acked = Vec::new();
        let mut errors = Vec::new();
        for worker in workers {
            let (a, e) = worker.join().expect("client thread");
            acked.extend(a);
            errors.extend(e);
        }
        (acked, errors)
    })
}

/// Every acknowledged ticket is in `store`, created as acknowledged.
pub fn assert_all_present(store: &Store, acked: &[Ticket]) {
    let tickets: BTreeMap<TicketId, Ticket> =
        all_tickets(store).into_iter().map(|t| (t.id, t)).collect();
    for ticket in acked {
        let found = tickets.get(&ticket.id);
        assert!(
            found.is_some_and(|t| t.title == ticket.title && t.created_at == ticket.created_at),
            "acknowledged ticket {} is missing or different: {found:?}",
            ticket.id
        );
    }
}

/// The options [`open`] uses.
pub fn open_options(urls: &[String], stream: &str) -> Options {
    jetstream(urls, stream, Duration::from_secs(15))
}

/// A request-reply over the plain NATS text protocol (for the JetStream API:
/// stream info, leader step-down); the reply's payload, or `None` if none
/// came within 3 s (a node in an election may not answer).
pub fn request_raw(url: &str, subject: &str, payload: &[u8]) -> Option<String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let address = url.trim_start_matches("nats://");
    let stream = std::net::TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut writer = stream;
    write!(
        writer,
        "CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\nSUB _INBOX.ticketlog_test 1\r\nPUB {subject} _INBOX.ticketlog_test {}\r\n",
        payload.len()
    )
    .unwrap();
    writer.write_all(payload).unwrap();
    writer.write_all(b"\r\n").unwrap();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        if let Some(header) = line.strip_prefix("MSG ") {
            let len: usize = header
                .split_whitespace()
                .last()
                .and_then(|n| n.parse().ok())
                .expect("a MSG line ends with the length");
            let mut body = vec![0; len + 2];
            reader.read_exact(&mut body).ok()?;
            body.truncate(len);
            return Some(String::from_utf8_lossy(&body).into_owned());
        }
        if line.starts_with("PING") {
            writer.write_all(b"PONG\r\n").unwrap();
        }
        if line.starts_with("-ERR") {
            return None;
        }
    }
}

/// The node (1..=3) leading `stream`, from `$JS.API.STREAM.INFO`, asking
/// each node in turn until one knows (bounded: 30 s).
pub fn stream_leader(urls: &[String], stream: &str) -> u32 {
    let started = Instant::now();
    loop {
        for url in urls {
            let info = request_raw(url, &format!("$JS.API.STREAM.INFO.{stream}"), b"");
            let leader = info.and_then(|info| {
                let at = info.find("\"leader\":\"n")? + "\"leader\":\"n".len();
                info.get(at..at + 1)?.parse().ok()
            });
            if let Some(leader) = leader {
                return leader;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no node named the stream's leader within 30 s"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Sets the flag when dropped, even by a panic: stops a load thread that a
/// scope would otherwise wait for forever.
pub struct StopOnDrop<'a>(pub &'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Waits (bounded) until `store` has applied the stream up to `last_lsn`;
/// returns its stats there.
pub fn wait_for_lsn(store: &Store, last_lsn: u64, within: Duration) -> ticketlog::Stats {
    let started = Instant::now();
    loop {
        let stats = store.client().stats().expect("stats");
        if stats.last_lsn >= last_lsn {
            return stats;
        }
        assert!(
            started.elapsed() < within,
            "the store did not reach LSN {last_lsn} within {within:?} (at {})",
            stats.last_lsn
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Fails the test (from a thread of its own) if it runs longer than
/// `limit`: a fault test that hangs must not hang CI. Dropped when the test
/// ends.
pub struct Watchdog {
    done: Arc<AtomicBool>,
}

impl Watchdog {
    /// Starts the watchdog for `test`.
    pub fn start(test: &'static str, limit: Duration) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&done);
        thread::spawn(move || {
            let started = Instant::now();
            while !seen.load(Ordering::Relaxed) {
                if started.elapsed() > limit {
                    eprintln!("{test}: still running after {limit:?}: aborting the test binary");
                    std::process::abort();
                }
                thread::sleep(Duration::from_millis(100));
            }
        });
        Watchdog { done }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// The stream's snapshot bucket, through the NATS client.
pub struct Bucket {
    /// The runtime the client runs on.
    pub runtime: tokio::runtime::Runtime,
    /// The bucket.
    pub bucket: ObjectStore,
}

impl Bucket {
    pub fn open(urls: &[String], stream: &str) -> Bucket {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let bucket = runtime.block_on(async {
            let addrs: Vec<async_nats::ServerAddr> =
                urls.iter().map(|url| url.parse().expect("a URL")).collect();
            let client = async_nats::connect(addrs.as_slice())
                .await
                .expect("connect");
            async_nats::jetstream::new(client)
                .get_object_store(format!("ticketlog-{stream}-snapshots"))
                .await
                .expect("the stream's snapshot bucket exists")
        });
        Bucket { runtime, bucket }
    }

    /// The names of the objects in the bucket, sorted.
    pub fn names(&self) -> Vec<String> {
        use futures_util::StreamExt;
        self.runtime.block_on(async {
            let mut list = self.bucket.list().await.unwrap();
            let mut names = Vec::new();
            while let Some(info) = list.next().await {
                names.push(info.unwrap().name);
            }
            names.sort();
            names
        })
    }

    /// The object's bytes and metadata.
    pub fn get(&self, name: &str) -> (Vec<u8>, HashMap<String, String>) {
        self.runtime.block_on(async {
            let mut object = self.bucket.get(name).await.unwrap();
            let metadata = object.info().metadata.clone();
            let mut bytes = Vec::new();
            object.read_to_end(&mut bytes).await.unwrap();
            (bytes, metadata)
        })
    }

    /// Replaces the object `name` with `bytes` and `metadata`.
    pub fn put(&self, name: &str, bytes: &[u8], metadata: HashMap<String, String>) {
        self.runtime.block_on(async {
            let mut reader = bytes;
            self.bucket
                .put(
                    ObjectMetadata {
                        name: name.to_string(),
                        metadata,
                        ..ObjectMetadata::default()
                    },
                    &mut reader,
                )
                .await
                .unwrap();
        });
    }

    /// Deletes every object, so that a new host replays the stream in full.
    pub fn clear(&self) {
        for name in self.names() {
            self.runtime
                .block_on(self.bucket.delete(&name))
                .expect("delete a snapshot object");
        }
    }

    /// Flips one byte in the middle of the object's bytes (its metadata,
    /// and the object store's own digest of the new bytes, stay valid):
    /// only ticketlog's checks can tell.
    pub fn damage(&self, name: &str) {
        let (mut bytes, metadata) = self.get(name);
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        self.put(name, &bytes, metadata);
    }
}
