"""``llm-extract review --serve``: the page over HTTP on 127.0.0.1, rebuilt on every request.

It binds the loopback address only and answers only requests addressed to it (``Host``), so a
DNS-rebinding page cannot read letters through it; every response carries the page's policy.
"""

from __future__ import annotations

import http.server
import sys
from collections.abc import Callable
from typing import Any

import typer

from .inputs import ReviewInputError
from .page import content_security_policy

DEFAULT_PORT = 8765
HOST = "127.0.0.1"
#: Headers on every response of ``--serve``: the page is self-contained, so nothing may load
#: into it, frame it, sniff it into another type or keep it in a cache.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class _Handler(http.server.BaseHTTPRequestHandler):
    build: Callable[[], str]
    #: ``Host`` values this server answers: its own address. Anything else is a DNS-rebinding
    #: page (a hostile name resolved to 127.0.0.1) or a misdirected request, and gets 403.
    allowed_hosts: frozenset[str] = frozenset()

    def end_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.send_header("Content-Security-Policy", content_security_policy(served=True))
        super().end_headers()

    def _host_allowed(self) -> bool:
        hosts = self.headers.get_all("Host") or []
        return len(hosts) == 1 and hosts[0].strip().lower() in type(self).allowed_hosts

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self._host_allowed():
            self.send_error(403, "Forbidden", "This server answers only to its own address (Host header).")
            return
        if self.path.split("?")[0] not in ("/", "/index.html", "/review.html"):
            self.send_error(404)
            return
        try:
            body = type(self).build().encode("utf-8")
        except ReviewInputError as exc:
            self.send_error(500, explain=str(exc))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        sys.stderr.write(f"review: {self.address_string()} {format % args}\n")


def allowed_hosts(port: int) -> frozenset[str]:
    """The ``Host`` header values of a page served on 127.0.0.1:``port``."""
    hosts = {f"{HOST}:{port}", f"localhost:{port}"}
    if port == 80:
        hosts |= {HOST, "localhost"}
    return frozenset(hosts)


def make_server(build: Callable[[], str], port: int = DEFAULT_PORT) -> http.server.ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1 only that rebuilds the page on every request (fresh results)
    and answers only requests addressed to it (``Host``: 127.0.0.1:PORT or localhost:PORT)."""
    handler = type("ReviewHandler", (_Handler,), {"build": staticmethod(build)})
    server = http.server.ThreadingHTTPServer((HOST, port), handler)
    handler.allowed_hosts = allowed_hosts(server.server_address[1])
    return server


def serve(build: Callable[[], str] | str, port: int = DEFAULT_PORT) -> None:
    """Serve the page on http://127.0.0.1:PORT/ until interrupted. ``build`` is the HTML or a builder."""
    builder = (lambda: build) if isinstance(build, str) else build
    server = make_server(builder, port)
    typer.echo(f"Serving the review page on http://{HOST}:{server.server_address[1]}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
