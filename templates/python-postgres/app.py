"""Starter WSGI app that counts visits in PostgreSQL (DATABASE_URL)."""
import os
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer, make_server

import psycopg

DATABASE_URL = os.environ["DATABASE_URL"]


def migrate():
    with psycopg.connect(DATABASE_URL) as db:
        db.execute("CREATE TABLE IF NOT EXISTS visits (at timestamptz NOT NULL DEFAULT now())")


def application(environ, start_response):
    if environ["PATH_INFO"] == "/healthz":
        with psycopg.connect(DATABASE_URL, connect_timeout=3) as db:
            db.execute("SELECT 1")
        body = b"ok\n"
    else:
        with psycopg.connect(DATABASE_URL) as db:
            db.execute("INSERT INTO visits DEFAULT VALUES")
            (count,) = db.execute("SELECT count(*) FROM visits").fetchone()
        body = f"visit number {count}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


if __name__ == "__main__":
    migrate()
    port = int(os.environ.get("PORT", "8000"))
    print(f"serving on port {port}", flush=True)
    make_server("0.0.0.0", port, application, server_class=Server).serve_forever()
