#!/usr/bin/env python3
"""Load generator and analysis for scripts/bench-zero-downtime (stdlib only).

run      steady GET load on one loopback port with a Host header: N worker
         threads, a short sleep between requests, hard caps on the number of
         requests and on seconds; stops early on SIGTERM/SIGINT. Every request
         opens a new connection and sends `Connection: close` (see below).
         Writes one CSV row per request: wall-clock start (epoch seconds),
         latency (ms), HTTP status (0 when none), error (empty when none).

analyze  reads that CSV and a windows file (one `kind index start end status
         [switched]` line per deploy, epoch seconds; `switched` is when the
         Caddy switch was done, `-` when unknown) and prints a Markdown report:
         requests, failures and p50/p99 latency inside and outside the switch
         windows and in their first part (start to `switched` + 1 s, where
         the new container starts and Caddy reloads), one row per window,
         every failed request, and whether the goal (0 failed requests; p99
         inside the windows within 2x of p99 outside them) was met. Exit
         status: 0 met, 2 not met.

Why one connection per request: each request then goes through Caddy's
accept path and route lookup under whatever config is live at that moment,
and the client never reuses a connection that a config change closed while it
sat idle. Such a stale keep-alive connection is retried transparently by
browsers and most HTTP clients; a client without that retry would count it as
a failed request that no real user sees. Without keep-alive, every failure
counted here is one a real client would have seen too.
"""

import argparse
import csv
import http.client
import math
import signal
import sys
import threading
import time

FIELDS = ["start", "latency_ms", "status", "error"]
# How long after the Caddy switch the "first part" of a window lasts (s).
SWITCH_MARGIN = 1.0


# --- run -----------------------------------------------------------------


def one_request(port, host, path, expect, timeout):
    """GET path once on a new connection; returns (status, error)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, "Connection": "close"})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            return resp.status, "status %d: %r" % (resp.status, body[:80])
        if expect and not body.startswith(expect.encode()):
            return resp.status, "unexpected body %r" % body[:80]
        return resp.status, ""
    except Exception as e:  # every failure is data, whatever its kind
        return 0, "%s: %s" % (type(e).__name__, e)
    finally:
        conn.close()


def run(args):
    stop = threading.Event()
    lock = threading.Lock()
    records = []
    started = [0]
    deadline = time.monotonic() + args.max_seconds

    def on_signal(_sig, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def worker():
        while not stop.is_set():
            with lock:
                if started[0] >= args.max_requests:
                    break
                started[0] += 1
            if time.monotonic() > deadline:
                break
            wall = time.time()
            t0 = time.perf_counter()
            status, error = one_request(args.port, args.host, args.path, args.expect, args.timeout)
            ms = (time.perf_counter() - t0) * 1000.0
            records.append((wall, ms, status, error))
            stop.wait(args.interval)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.workers)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        if stop.wait(0.2):
            break
    stop.set()
    for t in threads:
        t.join(args.timeout + 5)
    records.sort()
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FIELDS)
        for wall, ms, status, error in records:
            w.writerow(["%.6f" % wall, "%.3f" % ms, status, error])
    failed = sum(1 for r in records if r[3])
    why = "capped" if started[0] >= args.max_requests or time.monotonic() > deadline else "stopped"
    print(
        "loadgen: %d requests, %d failed (%s)" % (len(records), failed, why),
        file=sys.stderr,
    )
    return 0


# --- analyze ---------------------------------------------------------------


def percentile(values, p):
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(values)))
    return values[rank - 1]


def fmt_ms(v):
    return "-" if v is None else "%.1f" % v


def load_requests(path):
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out.append(
                (float(row["start"]), float(row["latency_ms"]), int(row["status"]), row["error"])
            )
    out.sort()
    return out


def load_windows(path):
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5:
                kind, index, start, end, status = parts[:5]
                switched = parts[5] if len(parts) > 5 and parts[5] != "-" else None
                out.append(
                    (kind, index, float(start), float(end), status,
                     None if switched is None else float(switched))
                )
    return out


def stats(reqs):
    lat = sorted(r[1] for r in reqs if not r[3])
    return {
        "n": len(reqs),
        "failed": sum(1 for r in reqs if r[3]),
        "p50": percentile(lat, 50),
        "p99": percentile(lat, 99),
        "max": lat[-1] if lat else None,
    }


def window_of(t, windows):
    for w in windows:
        if w[2] <= t <= w[3]:
            return w
    return None


def analyze(args):
    reqs = load_requests(args.requests)
    windows = load_windows(args.windows)
    if not reqs:
        print("no requests were recorded", file=sys.stderr)
        return 1
    t0 = reqs[0][0]
    inside = [r for r in reqs if window_of(r[0], windows)]
    outside = [r for r in reqs if not window_of(r[0], windows)]
    s_all, s_in, s_out = stats(reqs), stats(inside), stats(outside)
    # The first part of each window: the new container starts, Caddy reloads.
    cores = [
        (w[2], min(w[3], w[5] + SWITCH_MARGIN)) for w in windows if w[5] is not None
    ]
    s_core = stats([r for r in reqs if any(a <= r[0] <= b for a, b in cores)])

    out = []
    out.append("| requests | total | failed | p50 ms | p99 ms | max ms |")
    out.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    rows = [("inside switch windows", s_in)]
    if cores:
        rows.append(("inside, first part: start → Caddy switch + %g s" % SWITCH_MARGIN, s_core))
    for label, s in rows + [
        ("outside switch windows", s_out),
        ("all", s_all),
    ]:
        out.append(
            "| %s | %d | %d | %s | %s | %s |"
            % (label, s["n"], s["failed"], fmt_ms(s["p50"]), fmt_ms(s["p99"]), fmt_ms(s["max"]))
        )
    out.append("")
    out.append(
        "| window | outcome | seconds | switched after s | requests | failed | p50 ms | p99 ms |"
    )
    out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind, index, start, end, status, switched in windows:
        s = stats([r for r in reqs if start <= r[0] <= end])
        out.append(
            "| %s %s | %s | %.1f | %s | %d | %d | %s | %s |"
            % (
                kind, index, status, end - start,
                "-" if switched is None else "%.1f" % (switched - start),
                s["n"], s["failed"], fmt_ms(s["p50"]), fmt_ms(s["p99"]),
            )
        )
    out.append("")

    problems = []
    if s_all["failed"]:
        problems.append("%d failed request(s)" % s_all["failed"])
    bad_windows = [w for w in windows if w[4] != "ok"]
    if bad_windows:
        problems.append(
            "%d deploy(s) did not complete: %s"
            % (len(bad_windows), ", ".join("%s %s (%s)" % (w[0], w[1], w[4]) for w in bad_windows))
        )
    if windows and reqs[-1][0] < windows[-1][3]:
        problems.append("the load stopped (hit its cap) before the last switch window ended")
    if s_in["p99"] is None or s_out["p99"] is None:
        problems.append("no successful requests inside or outside the windows to compare")
    else:
        ratio = s_in["p99"] / s_out["p99"] if s_out["p99"] > 0 else float("inf")
        verdict = "within" if ratio <= 2.0 else "NOT within"
        out.append(
            "p99 inside / outside the switch windows: %.1f ms / %.1f ms = %.2fx (%s 2x)."
            % (s_in["p99"], s_out["p99"], ratio, verdict)
        )
        if ratio > 2.0:
            problems.append("p99 during switches is %.2fx the steady-state p99" % ratio)
    met = not problems
    out.append(
        "Goal (0 failed requests; p99 during switches within 2x of steady state): %s"
        % ("**met**." if met else "**not met**: " + "; ".join(problems) + ".")
    )

    failed = [r for r in reqs if r[3]]
    if failed:
        out.append("")
        out.append("Failed requests (seconds since the load started, window, error):")
        out.append("")
        for r in failed[: args.max_failures]:
            w = window_of(r[0], windows)
            where = "%s %s" % (w[0], w[1]) if w else "outside"
            out.append("- +%.3f s, %s: %s" % (r[0] - t0, where, r[3]))
        if len(failed) > args.max_failures:
            out.append("- ... and %d more" % (len(failed) - args.max_failures))
    print("\n".join(out))
    return 0 if met else 2


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("run", help="generate load, write a CSV of requests")
    r.add_argument("--port", type=int, required=True, help="loopback port to send to")
    r.add_argument("--host", required=True, help="Host header")
    r.add_argument("--path", default="/")
    r.add_argument("--expect", default="", help="a 200 body must start with this")
    r.add_argument("--workers", type=int, default=4)
    r.add_argument("--interval", type=float, default=0.02, help="sleep between requests (s)")
    r.add_argument("--timeout", type=float, default=10.0, help="per-request timeout (s)")
    r.add_argument("--max-requests", type=int, default=100000)
    r.add_argument("--max-seconds", type=float, default=900.0)
    r.add_argument("--out", required=True, help="CSV file to write")
    a = sub.add_parser("analyze", help="Markdown report from a CSV and a windows file")
    a.add_argument("--requests", required=True)
    a.add_argument("--windows", required=True)
    a.add_argument("--max-failures", type=int, default=50, help="failed requests listed")
    args = p.parse_args()
    if args.mode == "run":
        if args.workers < 1 or args.max_requests < 1 or args.max_seconds <= 0:
            p.error("workers, max-requests and max-seconds must be positive")
        return run(args)
    return analyze(args)


if __name__ == "__main__":
    sys.exit(main())
