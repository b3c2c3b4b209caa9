"""The opt-in HTTP endpoint: /metrics for Prometheus, /healthz and /readyz (docs/monitoring.md).

It runs on threads of its own (one per request, from the standard library's HTTP server) and
only reads what the loop keeps: a scrape or a probe never waits for the loop, so a stuck loop
is reported rather than hiding the report, and the loop never waits for a slow client. Nothing
listens unless the config has `http:`.

- `/healthz`: alive. 200 while the loop came round within `http.alive_within` seconds (or
  systemd's WatchdogSec, when the watchdog is on); 503 otherwise, for a supervisor to restart.
- `/readyz`: ready to do its job. 200 when every broker link is connected with its
  subscriptions acknowledged, every outbox is below `http.ready_outbox_fill`, no pipeline has
  every filter quarantined, and the loop is alive; else 503 with each reason as JSON.
- `/metrics`: the Prometheus text format (`edged.daemon.prometheus`), plus the process's RSS,
  CPU seconds and open file descriptors.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from edged.config.model import HttpConfig
from edged.daemon.health import readiness
from edged.errors import SetupError

if TYPE_CHECKING:
    from edged.daemon.daemon import Daemon

log = structlog.get_logger("edged.http")

# A client that connects and sends nothing must not keep a thread forever.
_CLIENT_TIMEOUT = 10.0


def liveness(daemon: Daemon, alive_within: float) -> tuple[bool, float]:
    """Whether the loop came round within `alive_within` seconds, and how long ago it did."""
    since = max(0.0, time.monotonic() - daemon.loop_at)
    return since <= alive_within, since


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True


class _HTTP6Server(_HTTPServer):
    address_family = socket.AF_INET6


class HttpEndpoint:
    """The endpoint's server and its thread; `start()` binds (raising SetupError if it cannot),
    `close()` stops it."""

    def __init__(self, settings: HttpConfig, daemon: Daemon, watchdog: float | None) -> None:
        from prometheus_client import CollectorRegistry
        from prometheus_client.process_collector import ProcessCollector

        from edged.daemon.prometheus import DaemonCollector

        self.settings = settings
        self.daemon = daemon
        # systemd restarts a service whose watchdog pings stop for WatchdogSec (twice the
        # interval the loop pings at): alive means the same thing to both.
        self.alive_within = 2 * watchdog if watchdog is not None else settings.alive_within
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(DaemonCollector(daemon))
        ProcessCollector(registry=self.registry)
        self._server: socketserver.TCPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        handler = _handler(self)
        settings = self.settings
        try:
            if settings.unix_socket:
                path = Path(settings.listen)
                with contextlib.suppress(FileNotFoundError):
                    if path.is_socket():
                        path.unlink()  # left by an earlier run that did not stop cleanly
                server: socketserver.TCPServer = _UnixHTTPServer(str(path), handler)
                os.chmod(path, 0o660)
            else:
                host, port = settings.address
                kind = _HTTP6Server if ":" in host else _HTTPServer
                server = kind((host, port), handler)
        except OSError as exc:
            raise SetupError([f"http.listen: cannot listen on {settings.listen}: {exc}"]) from exc
        self._server = server
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, args=(server,), name="edged-http")
        self._thread.daemon = True
        self._thread.start()
        log.info("http_listening", listen=settings.listen, alive_within_s=self.alive_within)

    @property
    def port(self) -> int | None:
        """The TCP port listened on (the real one when the config said port 0)."""
        address = None if self._server is None else self._server.server_address
        return int(address[1]) if isinstance(address, tuple) else None

    def _serve(self, server: socketserver.TCPServer) -> None:
        """Take requests until `close()` writes to the wake-up pipe. The standard library's
        serve_forever polls for its stop flag (5 times a second at its 0.2 s default: 0.6 ms of
        CPU a second measured, 7 % of an idle daemon's); this thread sleeps until there is
        something to do."""
        with selectors.DefaultSelector() as selector:
            selector.register(server.fileno(), selectors.EVENT_READ, "request")
            selector.register(self._wake_r, selectors.EVENT_READ, "stop")
            while True:
                for key, _ in selector.select():
                    if key.data == "stop":
                        return
                    server.handle_request()  # readable: accepts at once, a thread serves it

    def close(self) -> None:
        server = self._server
        if server is None:
            return
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(5)
        server.server_close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._server = None
        if self.settings.unix_socket:
            with contextlib.suppress(OSError):
                Path(self.settings.listen).unlink()


def _handler(endpoint: HttpEndpoint) -> type[BaseHTTPRequestHandler]:
    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

    class Handler(BaseHTTPRequestHandler):
        timeout = _CLIENT_TIMEOUT
        server_version = "edged"
        sys_version = ""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            daemon = endpoint.daemon
            if path == "/metrics":
                self._send(200, generate_latest(endpoint.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                alive, since = liveness(daemon, endpoint.alive_within)
                body = {"alive": alive, "loop_last_round_s": round(since, 3)}
                self._json(200 if alive else 503, body)
            elif path == "/readyz":
                reasons = readiness(
                    daemon, endpoint.settings.ready_outbox_fill, endpoint.alive_within
                )
                self._json(503 if reasons else 200, {"ready": not reasons, "reasons": reasons})
            else:
                self._json(
                    404, {"error": "not found", "paths": ["/metrics", "/healthz", "/readyz"]}
                )

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, json.dumps(body).encode() + b"\n", "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def address_string(self) -> str:
            return str(self.client_address[0]) if self.client_address else "unix"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape a second would flood the journal; errors are logged below

        def log_error(self, format: str, *args: Any) -> None:
            log.warning("http_request_failed", detail=format % args)

    return Handler
