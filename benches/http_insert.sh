#!/usr/bin/env bash
# Durable creates over HTTP from a separate load generator (wrk, C, two
# threads, CONNS keep-alive connections) against a real `ticketlog serve`
# (--durability always), then checks that every create answered 201 is in
# the store. Prints one JSON line per run; with PEERS set (a built copy of
# the peers harness), also the in-process insert and redis-aof at the same
# concurrency, interleaved, so the three are compared in one run.
#
#   benches/http_insert.sh [ROUNDS]            # needs wrk (apt-get install wrk)
#   PEERS=path/to/peers benches/http_insert.sh 3   # + redis-aof (apt-get install redis-server)
#
# CONNS (default 64), SECS (default 10), DATA_DIR (default ./bench-data: on
# the disk being measured).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
CONNS=${CONNS:-64}
SECS=${SECS:-10}
DATA_DIR=${DATA_DIR:-$PWD/bench-data}
mkdir -p "$DATA_DIR"
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --bin ticketlog
T=$PWD/target/release/ticketlog

http_round() {
    local dir out pid addr
    dir=$(mktemp -d "$DATA_DIR/http.XXXXXX")
    out="$dir/serve.out"
    "$T" serve --dir "$dir/store" --listen 127.0.0.1:0 --durability always >"$out" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        addr=$(sed -n 's/^listening on \(http:[^ ]*\)$/\1/p' "$out")
        [ -n "$addr" ] && break
        sleep 0.1
    done
    [ -n "$addr" ] || { cat "$out" >&2; kill "$pid"; exit 1; }
    line=$(wrk -t2 -c"$CONNS" -d"${SECS}s" --timeout 30s -s benches/http_insert.lua "$addr/tickets" | tail -1)
    kill -TERM "$pid"
    wait "$pid"
    # Every create answered 201 must be in the store after a clean stop.
    created=$(sed -n 's/.*"created":\([0-9]*\).*/\1/p' <<<"$line")
    held=$("$T" stats --dir "$dir/store" --json | sed -n 's/.*"tickets":\([0-9]*\).*/\1/p')
    echo "{\"engine\":\"ticketlog-http\",\"clients\":$CONNS,${line#\{}" | sed "s/}\$/,\"tickets_after_restart\":${held:-null}}/"
    if [ -n "$held" ] && [ "$held" -lt "$created" ]; then
        echo "LOST: $created creates answered 201, $held tickets after restart" >&2
        exit 1
    fi
    rm -rf "$dir"
}

for _ in $(seq "$ROUNDS"); do
    http_round
    if [ -n "${PEERS:-}" ]; then
        "$T" bench --workload insert --clients "$CONNS" --ops 2000 --dir "$DATA_DIR/inproc" --json
        "$PEERS/target/release/peers" --engine redis-aof --workload insert --clients "$CONNS" \
            --ops 500 --dir "$DATA_DIR/redis"
    fi
done
