#!/usr/bin/env bash
# Runs one fuzz target for a number of seconds, with the flags it needs:
#   fuzz/run.sh TARGET [SECONDS]   (default 60)
# New inputs go to fuzz/corpus/TARGET/ (not committed); the committed seeds in
# data/fuzz/TARGET/ are read too. A crash is written to fuzz/artifacts/TARGET/.
#
# -s none: the library is #![forbid(unsafe_code)], and without AddressSanitizer
# the targets run about twice as fast. -a: debug assertions on, so the
# library's own invariant checks run under the fuzzer.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh TARGET [SECONDS]}
seconds=${2:-60}
flags=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1)
if [ "$target" = log_decode ]; then
    # The log decoder must never allocate without bound on any input.
    flags+=(-rss_limit_mb=512 -malloc_limit_mb=64)
fi
mkdir -p "corpus/$target"
exec cargo +nightly fuzz run -s none -a "$target" "corpus/$target" "../data/fuzz/$target" -- "${flags[@]}"
