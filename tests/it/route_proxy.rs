//! TCP proxies that carry a test cluster's routes, one per ordered pair of
//! nodes, so that a test can cut a node off from the others (a network
//! partition on one machine, without `iptables`) and heal it again.
//!
//! The port plan is `.ci/nats-cluster.sh`'s with `NATS_ROUTE_PROXIES=1`:
//! node i dials node j at `B+300+3(i-1)+(j-1)`; the proxy there forwards to
//! node j's route port `B+100+(j-1)`. A cut closes every connection of the
//! links it names and closes each new one at once until the heal, so both
//! ends see the route drop and every redial fail.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One direction of dialling: node `from` connecting to node `to`.
struct Link {
    from: u32,
    to: u32,
    port: u16,
    target: u16,
    cut: AtomicBool,
    stopped: AtomicBool,
    /// Both sockets of every connection carried now, by a number of its
    /// own, to close on a cut.
    open: Mutex<HashMap<u64, [TcpStream; 2]>>,
    next: AtomicU64,
}

/// The six route proxies of a 3-node test cluster; stopped when dropped.
pub struct RouteProxies {
    links: Vec<Arc<Link>>,
}

impl RouteProxies {
    /// Binds every proxy for the cluster at `base_port` (before the cluster
    /// starts, so that its first routes already go through them).
    pub fn start(base_port: u16) -> RouteProxies {
        let mut links = Vec::new();
        for from in 1..=3u32 {
            for to in (1..=3u32).filter(|to| *to != from) {
                let port = base_port + 300 + 3 * (from as u16 - 1) + (to as u16 - 1);
                let listener = TcpListener::bind(("127.0.0.1", port))
                    .unwrap_or_else(|e| panic!("route proxy n{from}->n{to} on {port}: {e}"));
                let link = Arc::new(Link {
                    from,
                    to,
                    port,
                    target: base_port + 100 + (to as u16 - 1),
                    cut: AtomicBool::new(false),
                    stopped: AtomicBool::new(false),
                    open: Mutex::new(HashMap::new()),
                    next: AtomicU64::new(0),
                });
                let serving = Arc::clone(&link);
                thread::spawn(move || serve(&serving, &listener));
                links.push(link);
            }
        }
        RouteProxies { links }
    }

    /// Cuts every route from or to `node`: its connections close now, and
    /// new ones are closed as they arrive, until [`Self::heal`].
    pub fn isolate(&self, node: u32) {
        for link in self.links.iter().filter(|l| l.from == node || l.to == node) {
            link.cut.store(true, Ordering::SeqCst);
            link.close_all();
        }
    }

    /// Lets every route through again.
    pub fn heal(&self) {
        for link in &self.links {
            link.cut.store(false, Ordering::SeqCst);
        }
    }

    /// How many connections the links from or to `node` carry now.
    pub fn connections_of(&self, node: u32) -> usize {
        self.links
            .iter()
            .filter(|l| l.from == node || l.to == node)
            .map(|l| l.open.lock().unwrap().len())
            .sum()
    }
}

impl Drop for RouteProxies {
    fn drop(&mut self) {
        for link in &self.links {
            link.stopped.store(true, Ordering::SeqCst);
            link.close_all();
            // Wakes the accept loop so that it sees `stopped` and ends.
            let _ = TcpStream::connect(("127.0.0.1", link.port));
        }
    }
}

impl Link {
    fn close_all(&self) {
        for stream in self.open.lock().unwrap().drain().flat_map(|(_, pair)| pair) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn serve(link: &Arc<Link>, listener: &TcpListener) {
    for incoming in listener.incoming() {
        if link.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(downstream) = incoming else { continue };
        if link.cut.load(Ordering::SeqCst) {
            let _ = downstream.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(upstream) = TcpStream::connect_timeout(
            &([127, 0, 0, 1], link.target).into(),
            Duration::from_secs(1),
        ) else {
            let _ = downstream.shutdown(Shutdown::Both);
            continue;
        };
        if let Err(error) = carry(link, downstream, upstream) {
            eprintln!("route proxy n{}->n{}: {error}", link.from, link.to);
        }
    }
}

/// Copies both ways between the two sockets on threads of their own, and
/// registers them so that a cut can close them.
fn carry(link: &Arc<Link>, downstream: TcpStream, upstream: TcpStream) -> io::Result<()> {
    let _ = downstream.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let number = link.next.fetch_add(1, Ordering::SeqCst);
    {
        let mut open = link.open.lock().unwrap();
        // A cut that came in while this one was connecting closes it too.
        if link.cut.load(Ordering::SeqCst) {
            let _ = downstream.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
            return Ok(());
        }
        open.insert(number, [downstream.try_clone()?, upstream.try_clone()?]);
    }
    for (mut from, mut to) in [
        (downstream.try_clone()?, upstream.try_clone()?),
        (upstream, downstream),
    ] {
        let link = Arc::clone(link);
        thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            // One direction ending ends the connection: the other copy's
            // read then fails or ends too.
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
            link.open.lock().unwrap().remove(&number);
        });
    }
    Ok(())
}
