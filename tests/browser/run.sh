#!/usr/bin/env bash
# The console's browser tests: builds `ticketlog`, installs playwright-core
# from package-lock.json, and runs tests/browser/console.test.mjs against
# Debian's Chromium (no browser is downloaded). Screenshots go to target/.
#
# Needs: node 20+, npm, and chromium (Debian: `apt-get install -y chromium`;
# elsewhere set CHROMIUM to a Chromium or Chrome binary).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
    echo "browser tests: no Chromium at $CHROMIUM (apt-get install -y chromium, or set CHROMIUM)" >&2
    exit 1
fi
if [ -z "${TICKETLOG_BIN:-}" ]; then
    cargo build --quiet --bin ticketlog
    export TICKETLOG_BIN="$repo/target/debug/ticketlog"
fi
export SCREENSHOT_DIR="${SCREENSHOT_DIR:-$repo/target}"

cd "$here"
if [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
fi
# Every step and every test has its own bound; this is the whole run's.
timeout 600 node --test --test-concurrency=1 console.test.mjs
