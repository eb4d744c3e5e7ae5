#!/usr/bin/env bash
# Interleaved A/B runs of ticketlog against the peers harness's references, for
# machines too noisy for one pass of run-all.sh: each round runs the reference
# and ticketlog back to back, and the script prints every pair and the median
# ratio. Usage (from the repository root):
#
#   PEERS=path/to/writable/copy/of/peers benches/compare-peers.sh [ROUNDS]
#
# PEERS must hold a built copy of the peers harness (cargo build --release in it).
# DATA_DIR (default: ./bench-data) must be on the disk being measured.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-5}
PEERS=${PEERS:?set PEERS to a writable, built copy of the peers harness}
DATA_DIR=${DATA_DIR:-$PWD/bench-data}
mkdir -p "$DATA_DIR"
cargo build --release --quiet
T=target/release/ticketlog
P=$PEERS/target/release/peers

ops_per_s() { sed -n 's/.*"ops_per_s":\([0-9.]*\).*/\1/p'; }

compare() { # label reference-engine workload clients ops [ticketlog extra args...]
    local label=$1 ref=$2 workload=$3 clients=$4 ops=$5
    shift 5
    local ratios=()
    for _ in $(seq "$ROUNDS"); do
        a=$("$P" --engine "$ref" --workload "$workload" --clients "$clients" --ops "$ops" --dir "$DATA_DIR" | ops_per_s)
        b=$("$T" bench --workload "$workload" --clients "$clients" --ops "$ops" --dir "$DATA_DIR" --json "$@" | ops_per_s)
        r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')
        echo "$label: $ref $a ops/s, ticketlog $b ops/s, ratio $r"
        ratios+=("$r")
    done
    median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    echo "$label: median ratio ticketlog / $ref = $median over $ROUNDS rounds"
}

compare "insert C=1" rawfsync insert 1 3000
compare "insert C=64" groupcommit insert 64 1000
compare "insert C=64 vs fjall" fjall insert 64 100
compare "mixed C=16" groupcommit mixed 16 8000
compare "mixed C=16 vs fjall" fjall mixed 16 4000
