"""Starter WSGI app: swap `application` for Flask or Django's when you need them."""
import os
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer, make_server


def application(environ, start_response):
    if environ["PATH_INFO"] == "/healthz":
        body = b"ok\n"
    else:
        body = f"{os.environ.get('KATA_APP', 'app')} runs on kata (python)\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    print(f"serving on port {port}", flush=True)
    make_server("0.0.0.0", port, application, server_class=Server).serve_forever()
