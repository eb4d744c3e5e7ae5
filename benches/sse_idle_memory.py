#!/usr/bin/env python3
"""Resident memory of `ticketlog serve` holding N idle `GET /events` streams.

    python3 benches/sse_idle_memory.py path/to/ticketlog [N]

Starts a server on a fresh directory (127.0.0.1, port 0, --sse-clients-max
above N), reads VmRSS from /proc/<pid>/status, opens N streams that each get
their `200 text/event-stream` headers and then stay idle, waits for the RSS to
settle, reads it again, and prints one JSON line. Linux only (/proc).
"""
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 256)), hard))
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [binary, "serve", "--dir", os.path.join(tmp, "store"), "--listen", "127.0.0.1:0",
             "--sse-clients-max", str(n + 16), "--connections-max", str(n + 64)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            line = server.stdout.readline()
            match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
            if not match:
                raise RuntimeError(f"no address in {line!r}")
            port = int(match.group(1))
            time.sleep(0.5)
            before = rss_kib(server.pid)
            streams = []
            for _ in range(n):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = s.recv(4096)
                    if not chunk:
                        raise RuntimeError("stream closed before its headers")
                    head += chunk
                if not head.startswith(b"HTTP/1.1 200") or b"text/event-stream" not in head:
                    raise RuntimeError(f"not a stream: {head[:200]!r}")
                streams.append(s)
            time.sleep(2)
            after = rss_kib(server.pid)
            print(json.dumps({
                "streams": n, "rss_before_kib": before, "rss_after_kib": after,
                "kib_per_stream": round((after - before) / n, 2)}))
            for s in streams:
                s.close()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
