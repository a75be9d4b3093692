#!/usr/bin/env python3
"""Helpers for scripts/bench-caddy-scale (stdlib only; loopback admin API).

inject   adds other apps' parts to the shared server that listens on
         exactly --listen, the way kata writes them (one route per app,
         `@id` kata.<app>, its host matcher, its routes in a subroute), in
         one PATCH of the server's routes (host-matching parts go before any
         catch-all). Names are <prefix>-<i> for i in [--from, --to).
size     prints the config's size in bytes and its number of routes.
standalone
         Caddy's reloads at a size, on a Caddy of its own (--caddy), started
         on free loopback ports with one shared server holding --others
         parts plus two more: "deployed", whose part is replaced, and
         "probe", which gets the load (loadgen.py, against its host). Times
         --count replacements of the deployed app's part (`PATCH
         /id/kata.deployed`, its upstream switched between two addresses,
         what a deploy sends) and --count full reloads (`POST /load` of the
         whole config with one value changed), --gap seconds apart; a
         reload's window (loadgen.py analyze) is its call plus --margin
         seconds, while the old config shuts down. Prints the times (JSON,
         first line) and the probe's analysis. Needs no Docker, so it also
         runs in a private network namespace (where net.ipv4.tcp_migrate_req
         can be set).
ls       `kata caddy:ls` alone (--kata) on a Caddy of its own (--caddy) with
         0, 50 and 200 other apps' parts beside one app's on one shared
         server: the median of --runs, and of as many `GET /config/`.
late     what Caddy's old server does with a connection it accepted
         before a config change but whose request arrives after: on a Caddy
         of its own (--caddy), opens --conns connections, changes the config
         once (`PATCH /id/...` of the only route's response body), then sends
         one request on each. Prints one JSON line: what each got (the old
         body, the new one, or "closed without a response"), and what a
         fresh connection gets. Caddy built with Go 1.23 or later closes
         them unanswered (Go's HTTP server drops a request it reads after
         its Shutdown began); Caddy 2.6.2 (Go 1.19) answers them.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def call(admin, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(admin + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=120) as resp:
        text = resp.read()
    return json.loads(text) if text.strip() else None


def shared_server(config, listen):
    servers = (config or {}).get("apps", {}).get("http", {}).get("servers", {})
    for name, server in servers.items():
        if name.startswith("kata.") and server.get("listen") == [listen]:
            return name, server
    sys.exit("no kata shared server listens on exactly [%r]" % listen)


def part(app, host, dial, delay):
    proxy = {"handler": "reverse_proxy", "upstreams": [{"dial": dial}]}
    if delay:
        proxy["stream_close_delay"] = delay
    return {
        "@id": "kata." + app,
        "match": [{"host": [host]}],
        "handle": [
            {
                "handler": "subroute",
                "routes": [
                    {"match": [{"host": [host]}], "handle": [proxy], "terminal": True}
                ],
            }
        ],
        "terminal": True,
    }


def inject(args):
    config = call(args.admin, "GET", "/config/")
    name, server = shared_server(config, args.listen)
    routes = server.get("routes", [])
    first_catch_all = next(
        (i for i, r in enumerate(routes) if not any("host" in m for m in r.get("match", []))),
        len(routes),
    )
    new = [
        part("%s-%d" % (args.prefix, i), "%s-%d.test" % (args.prefix, i), args.dial, args.delay)
        for i in range(args.start, args.stop)
    ]
    routes = routes[:first_catch_all] + new + routes[first_catch_all:]
    call(args.admin, "PATCH", "/config/apps/http/servers/%s/routes" % name, routes)


def timed(f):
    start = time.time()
    f()
    return start, time.time()


def reload(args):
    windows = open(args.windows, "w")
    app = "kata." + args.app
    out = {"patch_part_ms": [], "load_full_ms": []}
    current = call(args.admin, "GET", "/id/" + app)
    for i in range(args.count):
        # a real change each time: Caddy skips a reload when nothing changed
        current["handle"][0]["routes"][0]["handle"][0]["upstreams"][0]["dial"] = (
            args.dial_a if i % 2 else args.dial_b
        )
        s, e = timed(lambda: call(args.admin, "PATCH", "/id/" + app, current))
        out["patch_part_ms"].append((e - s) * 1000)
        windows.write("patch %d %.6f %.6f ok -\n" % (i + 1, s, e + args.margin))
        time.sleep(args.gap)
    for i in range(args.count):
        config = call(args.admin, "GET", "/config/")
        config["apps"]["http"]["grace_period"] = "%ds" % (10 + i % 2)
        s, e = timed(lambda: call(args.admin, "POST", "/load", config))
        out["load_full_ms"].append((e - s) * 1000)
        windows.write("load %d %.6f %.6f ok -\n" % (i + 1, s, e + args.margin))
        time.sleep(args.gap)
    windows.close()
    summary = {}
    for k, v in out.items():
        summary[k] = {
            "median": round(statistics.median(v), 1),
            "max": round(max(v), 1),
            "n": len(v),
        }
    return summary


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Other(BaseHTTPRequestHandler):
    """The upstream of every app: answers "other" (outside Caddy, so that
    Caddy's reloads do not restart the upstream too)."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"other")

    def log_message(self, *_):
        pass


def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Other)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def standalone(args):
    work = tempfile.mkdtemp(prefix="kata-bench-reload-")
    admin_port, port = free_port(), free_port()
    admin = "http://127.0.0.1:%d" % admin_port
    listen = "127.0.0.1:%d" % port
    up1, up2 = upstream(), upstream()
    dial = "127.0.0.1:%d" % up1.server_address[1]
    dial2 = "127.0.0.1:%d" % up2.server_address[1]
    delay = "" if args.caddy_26 else "5m"
    parts = [part("other-%d" % i, "other-%d.test" % i, dial, delay) for i in range(args.others)]
    parts.append(part("deployed", "deployed.test", dial, delay))
    parts.append(part("probe", "probe.test", dial, delay))
    config = {
        "admin": {"listen": "127.0.0.1:%d" % admin_port, "config": {"persist": False}},
        "logging": {"logs": {"default": {"level": "ERROR"}}},
        "apps": {"http": {"servers": {
            "kata.127.0.0.1_%d" % port: {
                "listen": [listen], "automatic_https": {"disable": True}, "routes": parts},
        }}},
    }
    with open(os.path.join(work, "caddy.json"), "w") as f:
        json.dump(config, f)
    env = dict(os.environ, HOME=work, XDG_DATA_HOME=work, XDG_CONFIG_HOME=work)
    caddy = subprocess.Popen(
        [args.caddy, "run", "--config", "caddy.json"], cwd=work, env=env,
        stdin=subprocess.DEVNULL, stdout=open(os.path.join(work, "caddy.log"), "w"),
        stderr=subprocess.STDOUT)
    load = None
    try:
        for _ in range(150):
            try:
                call(admin, "GET", "/config/")
                break
            except OSError:
                time.sleep(0.1)
        csv_file = os.path.join(work, "requests.csv")
        load = subprocess.Popen([
            sys.executable, os.path.join(HERE, "loadgen.py"), "run", "--port", str(port),
            "--host", "probe.test", "--expect", "other", "--workers", "4",
            "--interval", "0.02", "--max-requests", "100000", "--max-seconds", "300",
            "--out", csv_file])
        time.sleep(3)
        args.admin, args.app = admin, "deployed"
        args.dial_a, args.dial_b = dial, dial2
        args.windows = os.path.join(work, "windows.txt")
        summary = reload(args)
        time.sleep(3)
        load.terminate()
        load.wait()
        load = None
        analysis = subprocess.run([
            sys.executable, os.path.join(HERE, "loadgen.py"), "analyze", "--requests", csv_file,
            "--windows", args.windows, "--max-failures", "5"], capture_output=True, text=True).stdout
        print(json.dumps(summary))
        table = analysis.split("\n\n")[0]
        failures = [l for l in analysis.splitlines() if l.startswith(("- ", "Failed"))]
        print("\n".join([table] + failures))
    finally:
        if load:
            load.terminate()
        caddy.terminate()
        caddy.wait()


def ls(args):
    work = tempfile.mkdtemp(prefix="kata-bench-ls-")
    admin_port, port = free_port(), free_port()
    admin = "http://127.0.0.1:%d" % admin_port
    base = {"admin": {"listen": "127.0.0.1:%d" % admin_port, "config": {"persist": False}}}
    with open(os.path.join(work, "caddy.json"), "w") as f:
        json.dump(base, f)
    env = dict(os.environ, HOME=work, XDG_DATA_HOME=work, XDG_CONFIG_HOME=work)
    caddy = subprocess.Popen(
        [args.caddy, "run", "--config", "caddy.json"], cwd=work, env=env,
        stdin=subprocess.DEVNULL, stdout=open(os.path.join(work, "caddy.log"), "w"),
        stderr=subprocess.STDOUT)
    kenv = dict(os.environ, KATA_ROOT=os.path.join(work, "root"))
    out = {}
    try:
        for _ in range(150):
            try:
                call(admin, "GET", "/config/")
                break
            except OSError:
                time.sleep(0.1)
        subprocess.run([args.kata, "setup", "--caddy-admin", admin], env=kenv, check=True,
                       stdout=subprocess.DEVNULL)
        dial = "127.0.0.1:9"
        # "app" as kata records a live release of it, so `caddy:ls app` reads
        # its part alone
        rel = os.path.join(work, "root", "state", "apps", "app", "releases", "1")
        os.makedirs(rel)
        with open(os.path.join(rel, "release.json"), "w") as f:
            json.dump({"number": 1, "commit": "0" * 40, "created": 0, "status": "live",
                       "mode": "compose"}, f)
        with open(os.path.join(rel, "caddy.json"), "w") as f:
            json.dump({"listen": ["127.0.0.1:%d" % port], "routes": []}, f)
        for n in [0, 50, 200]:
            parts = [part("other-%d" % i, "other-%d.test" % i, dial, "") for i in range(n)]
            parts.append(part("app", "app.test", dial, ""))
            config = dict(base, apps={"http": {"servers": {"kata.127.0.0.1_%d" % port: {
                "listen": ["127.0.0.1:%d" % port], "automatic_https": {"disable": True},
                "routes": parts}}}})
            call(admin, "POST", "/load", config)
            time.sleep(0.5)
            runs, ones, gets = [], [], []
            for _ in range(args.runs):
                s, e = timed(lambda: subprocess.run([args.kata, "caddy:ls"], env=kenv, check=True,
                                                    stdout=subprocess.DEVNULL))
                runs.append((e - s) * 1000)
                s, e = timed(lambda: subprocess.run([args.kata, "caddy:ls", "app"], env=kenv,
                                                    check=True, stdout=subprocess.DEVNULL))
                ones.append((e - s) * 1000)
                s, e = timed(lambda: call(admin, "GET", "/config/"))
                gets.append((e - s) * 1000)
            out[n] = {"caddy_ls_ms": round(statistics.median(runs), 1),
                      "caddy_ls_app_ms": round(statistics.median(ones), 1),
                      "caddy_ls_min_ms": round(min(runs), 1),
                      "caddy_ls_app_min_ms": round(min(ones), 1),
                      "get_config_ms": round(statistics.median(gets), 2)}
        for n in out:
            out[n]["x_of_0"] = round(out[n]["caddy_ls_ms"] / out[0]["caddy_ls_ms"], 2)
            out[n]["app_x_of_0"] = round(
                out[n]["caddy_ls_app_ms"] / out[0]["caddy_ls_app_ms"], 2)
            out[n]["min_x_of_0"] = round(out[n]["caddy_ls_min_ms"] / out[0]["caddy_ls_min_ms"], 2)
            out[n]["app_min_x_of_0"] = round(
                out[n]["caddy_ls_app_min_ms"] / out[0]["caddy_ls_app_min_ms"], 2)
        print(json.dumps({"caddy": args.caddy, "others": out}))
    finally:
        caddy.terminate()
        caddy.wait()


def late(args):
    work = tempfile.mkdtemp(prefix="kata-bench-late-")
    admin_port, port = free_port(), free_port()
    admin = "http://127.0.0.1:%d" % admin_port

    def route(body):
        return {"@id": "late", "handle": [{"handler": "static_response", "body": body}]}

    config = {
        "admin": {"listen": "127.0.0.1:%d" % admin_port, "config": {"persist": False}},
        "apps": {"http": {"servers": {"late": {
            "listen": ["127.0.0.1:%d" % port], "automatic_https": {"disable": True},
            "routes": [route("before")]}}}},
    }
    with open(os.path.join(work, "caddy.json"), "w") as f:
        json.dump(config, f)
    env = dict(os.environ, HOME=work, XDG_DATA_HOME=work, XDG_CONFIG_HOME=work)
    caddy = subprocess.Popen(
        [args.caddy, "run", "--config", "caddy.json"], cwd=work, env=env,
        stdin=subprocess.DEVNULL, stdout=open(os.path.join(work, "caddy.log"), "w"),
        stderr=subprocess.STDOUT)

    def ask(conn):
        conn.sendall(b"GET / HTTP/1.1\r\nHost: late.test\r\nConnection: close\r\n\r\n")
        data = b""
        try:
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError as e:
            return type(e).__name__
        finally:
            conn.close()
        if not data:
            return "closed without a response"
        return data.split(b"\r\n", 1)[0].decode() + " " + data.rsplit(b"\r\n", 1)[-1].decode()

    try:
        for _ in range(150):
            try:
                call(admin, "GET", "/config/")
                break
            except OSError:
                time.sleep(0.1)
        conns = [socket.create_connection(("127.0.0.1", port), 10) for _ in range(args.conns)]
        time.sleep(0.3)
        call(admin, "PATCH", "/id/late", route("after"))
        time.sleep(0.3)
        got = [ask(c) for c in conns]
        fresh = ask(socket.create_connection(("127.0.0.1", port), 10))
        print(json.dumps({"caddy": args.caddy, "opened before, asked after the change": got,
                          "fresh connection": fresh}))
    finally:
        caddy.terminate()
        caddy.wait()


def size(args):
    config = call(args.admin, "GET", "/config/")
    text = json.dumps(config)
    routes = sum(
        len(s.get("routes", []))
        for s in config.get("apps", {}).get("http", {}).get("servers", {}).values()
    )
    print(json.dumps({"bytes": len(text), "routes": routes}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("inject")
    i.add_argument("--admin", required=True)
    i.add_argument("--listen", required=True)
    i.add_argument("--prefix", default="other")
    i.add_argument("--from", dest="start", type=int, required=True)
    i.add_argument("--to", dest="stop", type=int, required=True)
    i.add_argument("--dial", required=True)
    i.add_argument("--delay", default="", help="stream_close_delay to set (empty: none)")
    s = sub.add_parser("size")
    s.add_argument("--admin", required=True)
    a = sub.add_parser("standalone")
    a.add_argument("--caddy", required=True, help="the Caddy binary")
    a.add_argument("--caddy-26", action="store_true", help="no stream_close_delay (Caddy 2.6)")
    a.add_argument("--others", type=int, required=True)
    a.add_argument("--count", type=int, default=10)
    a.add_argument("--gap", type=float, default=0.5)
    a.add_argument("--margin", type=float, default=0.4)
    l = sub.add_parser("ls")
    l.add_argument("--kata", required=True, help="the kata binary")
    l.add_argument("--caddy", required=True, help="the Caddy binary")
    l.add_argument("--runs", type=int, default=15)
    t = sub.add_parser("late")
    t.add_argument("--caddy", required=True, help="the Caddy binary")
    t.add_argument("--conns", type=int, default=5)
    args = p.parse_args()
    {"inject": inject, "size": size, "standalone": standalone, "ls": ls, "late": late}[
        args.cmd](args)


if __name__ == "__main__":
    main()
