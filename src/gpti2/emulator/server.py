"""HTTP server of the emulator: the routes of API.md on the standard library's server."""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import random
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from gpti2.emulator.art import placeholder_png, quick_png, size_for
from gpti2.emulator.store import InsufficientCredits, Store
from gpti2.quick import TEMPLATE_PROVIDERS

if TYPE_CHECKING:
    from gpti2.client import Credentials
    from gpti2.emulator.shipany import ShipAny

PROVIDERS = frozenset(TEMPLATE_PROVIDERS)  # the template's validation
MODES = frozenset({"text_to_image", "image_to_image"})
# Each side at most 5 digits: a ratio of thousands of digits is a 400, not a crash.
_RATIO = re.compile(r"[1-9]\d{0,4}:[1-9]\d{0,4}")
_FILE_ROUTE = re.compile(r"^/api/aiimage/files/([^/]+)/(\d{1,6})\.png$")
MAX_REQUEST_BODY = 32 * 1024 * 1024  # reference images arrive as data: URLs


class _BadLength(Exception):
    """The request's Content-Length is not a number we will read."""


class _ShuttingDown(Exception):
    """The emulator is stopping: the request is answered 503 without touching the store."""


# How long shutdown waits for requests in flight before it closes the store anyway.
DRAIN_SECONDS = 5.0


_TASK_ROUTE = re.compile(r"^/api/tasks/([^/]+)$")


@dataclass
class EmulatorConfig:
    """What `gpti2 serve` takes as flags."""

    host: str = "127.0.0.1"
    port: int = 8787
    tokens: list[str] = field(default_factory=list)
    credits: int = 100
    job_cost: int = 1
    job_seconds: float = 2.0
    images_per_job: int = 1
    db: Path | None = None
    image_size: int = 512
    latency: float = 0.0
    fail_rate: float = 0.0
    rate_limit: float = 0.0
    job_fail_rate: float = 0.0
    seed: int | None = None
    log: Callable[[str], None] | None = None  # one line per request, for `serve -v`
    api: str = "gpti2"  # the dialect served: gpti2, or shipany (emulator/shipany.py)
    users: list[str] = field(default_factory=list)  # EMAIL:PASSWORD, email sign-in
    secure_cookies: bool = False  # the __Secure- cookie name, as an https site sets
    session_seconds: float = 7 * 24 * 3600
    session_interval: float = 0.0  # better-auth's get-session rate limit (0: off)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: a burst of concurrent clients (batch -j,
    # the concurrency test) overflowed it and saw connections reset.
    request_queue_size = 128
    emulator: Emulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line under -v, never a traceback: a client that leaves is its right."""
        import sys

        exc = sys.exc_info()[1]
        log = self.emulator.config.log
        if isinstance(exc, ConnectionError | TimeoutError):
            if log is not None:
                log(f"{client_address[0]} disconnected ({type(exc).__name__})")
            return
        line = f"{client_address[0]} error: {type(exc).__name__}: {exc}"
        if log is not None:
            log(line)
        else:
            sys.stderr.write(f"gpti2 emulator: {line}\n")


class _Server6(_Server):
    address_family = socket.AF_INET6


class Emulator:
    """A running (or ready to run) emulator with its store and counters."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        # The address first: a port in use leaves no store or temporary folder behind.
        server = _Server6 if ":" in config.host else _Server  # ::1 is an address too
        self._server = server((config.host, config.port), _Handler)
        self._server.emulator = self
        self._tmpdir: str | None = None
        if config.db is None:
            self._tmpdir = tempfile.mkdtemp(prefix="gpti2-emulator-")
            db_path = Path(self._tmpdir) / "emulator.sqlite3"
        else:
            db_path = Path(config.db)
        self.store = Store(db_path, config.credits)
        self.generated_token: str | None = None
        tokens = list(config.tokens)
        if not tokens:
            self.generated_token = "emu_" + secrets.token_urlsafe(24)
            tokens = [self.generated_token]
        for token in tokens:
            self.store.add_token(token)
        self.tokens = tokens
        self.random = random.Random(config.seed)
        self.requests: collections.Counter[str] = collections.Counter()
        self._counter_lock = threading.Lock()
        self._queued_faults: list[tuple[int, bool, str]] = []
        self._in_flight: collections.Counter[str] = collections.Counter()
        self._busy = 0  # requests in flight, all routes
        self._idle = threading.Condition(self._counter_lock)
        self._peaks: dict[str, int] = {}
        self._hits: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep, daemon=True)
        self._sweeper.start()
        self.dialect: ShipAny | None = None
        if config.api == "shipany":
            from gpti2.emulator.shipany import ShipAny

            self.dialect = ShipAny(self)

    def client_credentials(self) -> Credentials:
        """How a client signs in here: the first token, or a fresh session's cookie."""
        from gpti2.client import Credentials

        if self.dialect is not None:
            return Credentials(*self.dialect.client_credentials())
        return Credentials(self.generated_token or self.tokens[0])

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def request_count(self) -> int:
        with self._counter_lock:
            return sum(self.requests.values())

    def start(self) -> Emulator:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    @property
    def closing(self) -> bool:
        """True once shutdown has begun: requests from then on are answered 503."""
        return self._stop.is_set()

    def pause(self, seconds: float) -> bool:
        """Wait `seconds`, or less when shutdown begins meanwhile (then True)."""
        return self._stop.wait(seconds)

    def shutdown(self, hurry: threading.Event | None = None) -> None:
        """Stop accepting, let the requests in flight end (a --latency wait ends at once
        and answers 503; a stuck client is given DRAIN_SECONDS, or until `hurry` is set),
        then release the store (and its temporary folder)."""
        self._stop.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
        end = time.monotonic() + DRAIN_SECONDS
        with self._idle:
            while self._busy and time.monotonic() < end and not (hurry and hurry.is_set()):
                self._idle.wait(0.05)
        self._sweeper.join(timeout=2)
        self.store.close()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def _sweep(self) -> None:
        while not self._stop.wait(0.2):
            with contextlib.suppress(Exception):
                self.store.finish_due_jobs()

    def fail_next(self, status: int, *, after_processing: bool = False, path: str = "") -> None:
        """Answer the next request (whose path starts with `path`) with `status`, for tests
        and rehearsals. With `after_processing` the request takes effect first, as when a
        proxy times out after the server did the work."""
        with self._counter_lock:
            self._queued_faults.append((status, after_processing, path))

    def _take_fault(self, path: str) -> tuple[int, bool] | None:
        with self._counter_lock:
            for i, (status, after, prefix) in enumerate(self._queued_faults):
                if path.startswith(prefix):
                    del self._queued_faults[i]
                    return status, after
            return None

    @contextlib.contextmanager
    def serving(self, path: str) -> Iterator[None]:
        """Count a request in flight (for shutdown to wait on, and for the peak of
        concurrent requests per route); once shutdown has begun, refuse it."""
        group = path.rsplit("/", 2)[0] + "/"
        with self._counter_lock:
            if self.closing:  # checked under the lock shutdown waits with: none slips by
                raise _ShuttingDown
            self._busy += 1
            self._in_flight[group] += 1
            self._peaks[group] = max(self._peaks.get(group, 0), self._in_flight[group])
        try:
            yield
        finally:
            with self._counter_lock:
                self._in_flight[group] -= 1
                self._busy -= 1
                self._idle.notify_all()

    def peak_in_flight(self, prefix: str) -> int:
        """The most requests under `prefix` that were ever answered at once."""
        with self._counter_lock:
            return max((n for g, n in self._peaks.items() if g.startswith(prefix)), default=0)

    def count(self, route: str) -> None:
        with self._counter_lock:
            self.requests[route] += 1

    def rate_limited(self, client: str) -> bool:
        """True when `client` went over --rate-limit requests in the last second."""
        limit = self.config.rate_limit
        if limit <= 0:
            return False
        now = time.monotonic()
        with self._counter_lock:
            hits = self._hits[client]
            while hits and now - hits[0] > 1.0:
                hits.popleft()
            if len(hits) >= limit:
                return True
            hits.append(now)
        return False

    def chance(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._counter_lock:
            return self.random.random() < rate


@contextlib.contextmanager
def running_emulator(config: EmulatorConfig | None = None) -> Iterator[Emulator]:
    """An emulator serving on a free loopback port for the duration of the block."""
    config = config or EmulatorConfig(port=0)
    emulator = Emulator(config).start()
    try:
        yield emulator
    finally:
        emulator.shutdown()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm the body would
    # wait ~40 ms for the client's delayed ACK on every keep-alive request.
    disable_nagle_algorithm = True
    server: _Server
    server_version = "gpti2-emulator"

    def log_message(self, format: str, *args: Any) -> None:  # quiet unless asked
        log = self.emu.config.log
        if log is not None:
            log(f"{self.client_address[0]} {format % args}")

    @property
    def emu(self) -> Emulator:
        return self.server.emulator

    # -- plumbing -------------------------------------------------------------------

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        try:
            with self.emu.serving(urlsplit(self.path).path):
                self._dispatch(method)
        except _BadLength:
            self.close_connection = True  # the rest of the stream cannot be trusted
            self._json(400, {"error": "Invalid Content-Length"})
        except _ShuttingDown:
            self.close_connection = True
            self._json(503, {"error": "The emulator is shutting down"}, {"Connection": "close"})

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        after = getattr(self, "_fault_after", None)
        if after is not None:
            self._fault_after = None
            status, body, content_type = (
                after,
                b'{"error": "Service Unavailable"}',
                "application/json",
            )
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _envelope(
        self,
        status: int,
        data: Any = None,
        message: str = "ok",
        headers: dict[str, str] | None = None,
    ) -> None:
        code = 0 if status < 400 else status
        self._json(status, {"code": code, "message": message, "data": data}, headers)

    def _read_body(self) -> bytes:
        raw = (self.headers.get("Content-Length") or "0").strip()
        if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_REQUEST_BODY:
            raise _BadLength
        length = int(raw)
        return self.rfile.read(length) if length else b""

    def _read_json(self) -> Any:
        try:
            return json.loads(self._read_body() or b"null")
        except (ValueError, RecursionError):
            return ValueError

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
            return token if self.emu.store.is_known(token) else None
        for part in self.headers.get("Cookie", "").split(";"):
            _, _, value = part.strip().partition("=")
            if value and self.emu.store.is_known(unquote(value)):
                return unquote(value)
        return None

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path
        self.emu.count(f"{method} {path}")
        config = self.emu.config
        if config.latency > 0 and self.emu.pause(config.latency):
            raise _ShuttingDown  # the emulator stops: no need to wait out the delay
        if self.emu.rate_limited(self.client_address[0]):
            self._read_body()
            self._json(429, {"error": "Too many requests"}, {"Retry-After": "1"})
            return
        if self.emu.chance(config.fail_rate):
            self._read_body()
            self._json(500, {"error": "Failed to generate image. Please try again later."})
            return
        fault = self.emu._take_fault(path)
        if fault is not None and not fault[1]:
            self._read_body()
            self._json(fault[0], {"error": f"Injected {fault[0]}"})
            return
        if fault is not None:
            self._fault_after = fault[0]
        if self.emu.dialect is not None and self.emu.dialect.handle(self, method, path):
            return
        query = parse_qs(url.query)
        if path == "/api/generate-images":
            self._quick(method)
        elif path == "/api/aiimage/start" and method == "POST":
            self._start()
        elif path in ("/api/aiimage/status", "/api/ai/query"):
            if method == "POST":
                body = self._read_json()
                task_id = body.get("taskId") if isinstance(body, dict) else None
            else:
                task_id = (query.get("taskId") or [None])[0]
            self._status(task_id)
        elif (match := _TASK_ROUTE.match(path)) and method == "GET":
            self._status(unquote(match[1]))
        elif (match := _FILE_ROUTE.match(path)) and method == "GET":
            self._file(unquote(match[1]), int(match[2]))
        else:
            self._read_body()
            self._json(404, {"error": f"no route {method} {path}"})

    # -- quick route ----------------------------------------------------------------

    def _quick(self, method: str) -> None:
        if method != "POST":
            self._send(405)
            return
        body = self._read_json()
        if body is ValueError:
            self._send(500)
            return
        if not isinstance(body, dict):
            self._json(400, {"error": "Invalid request parameters"})
            return
        prompt, provider, model = body.get("prompt"), body.get("provider"), body.get("modelId")
        ratio = body.get("aspectRatio") or "1:1"
        if (
            not isinstance(prompt, str)
            or not prompt.strip()
            or provider not in PROVIDERS
            or not isinstance(model, str)
            or not model
            or not isinstance(ratio, str)
            or not _RATIO.fullmatch(ratio)
        ):
            self._json(400, {"error": "Invalid request parameters"})
            return
        width, height = size_for(ratio, self.emu.config.image_size)
        image = quick_png(prompt, provider, model, width, height)
        self._json(200, {"provider": provider, "image": base64.b64encode(image).decode()})

    # -- job routes -----------------------------------------------------------------

    def _unauthorized(self) -> None:
        self._envelope(401, message="Unauthorized: sign in first (no valid session)")

    def _start(self) -> None:
        body = self._read_json()
        token = self._token()
        if token is None:
            self._unauthorized()
            return
        problem = _start_problem(body)
        if problem:
            self._envelope(400, message=problem)
            return
        config = self.emu.config
        fields = {
            "prompt": body["prompt"].strip(),
            "modelId": body.get("modelId") or "gpt-image-2-t2i",
            "featureId": body.get("featureId") or "ai-baby-image",
            "mode": body.get("mode") or "text_to_image",
            "aspectRatio": body.get("aspectRatio") or "1:1",
        }
        try:
            job_id, _ = self.emu.store.create_job(
                token,
                fields,
                cost=config.job_cost,
                duration=config.job_seconds,
                will_fail=self.emu.chance(config.job_fail_rate),
                image_count=config.images_per_job,
                idempotency_key=self.headers.get("Idempotency-Key"),
            )
        except InsufficientCredits as exc:
            self._envelope(
                402,
                message=f"Insufficient credits: this job costs {config.job_cost},"
                f" {exc.args[0]} remaining",
            )
            return
        self._envelope(200, self._job_data(token, job_id))

    def _job_data(self, token: str, job_id: str) -> dict[str, Any] | None:
        job = self.emu.store.job(token, job_id)
        if job is None:
            return None
        data: dict[str, Any] = {
            "taskId": job.id,
            "status": job.status,
            "progress": job.progress,
            "prompt": job.prompt,
            "modelId": job.model_id,
            "aspectRatio": job.aspect_ratio,
            "createdAt": job.created,
            "creditsRemaining": self.emu.store.credits(token),
        }
        if job.status == "success":
            data["images"] = [
                f"/api/aiimage/files/{job.id}/{n}.png" for n in range(1, job.image_count + 1)
            ]
        if job.error:
            data["error"] = job.error
        return data

    def _status(self, task_id: Any) -> None:
        token = self._token()
        if token is None:
            self._unauthorized()
            return
        if not isinstance(task_id, str) or not task_id:
            self._envelope(400, message="taskId is required")
            return
        data = self._job_data(token, task_id)
        if data is None:
            self._envelope(404, message=f"Task not found: {task_id}")
            return
        self._envelope(200, data, headers=self._come_back(token, task_id))

    def _come_back(self, token: str, task_id: str) -> dict[str, str]:
        """A Retry-After for an active job: a second before its end, in whole seconds
        (none in its last two; its `progress` tells the rest)."""
        job = self.emu.store.job(token, task_id)
        if job is None or job.status not in ("pending", "processing"):
            return {}
        left = self.emu.store.seconds_left(job)
        return {"Retry-After": str(int(left) - 1)} if left >= 2 else {}

    def _file(self, task_id: str, n: int) -> None:
        token = self._token()
        if token is None:
            self._unauthorized()
            return
        job = self.emu.store.job(token, task_id)
        if job is None or job.status != "success" or not 1 <= n <= job.image_count:
            self._envelope(404, message="File not found")
            return
        width, height = size_for(job.aspect_ratio, self.emu.config.image_size)
        self._send(200, placeholder_png(f"{job.prompt}#{n}", width, height), "image/png")


def _start_problem(body: Any) -> str | None:
    """Why a start body is invalid, or None."""
    if not isinstance(body, dict):
        return "Invalid request: the body must be a JSON object"
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "Invalid request: prompt is required"
    mode = body.get("mode", "text_to_image")
    if mode not in MODES:
        return f"Invalid request: unknown mode {mode!r}"
    ratio = body.get("aspectRatio", "1:1")
    if not isinstance(ratio, str) or not _RATIO.fullmatch(ratio):
        return "Invalid request: aspectRatio must be W:H"
    for key in ("featureId", "modelId"):
        if key in body and (not isinstance(body[key], str) or not body[key]):
            return f"Invalid request: {key} must be a non-empty string"
    urls = body.get("imageUrls")
    if urls is not None and (
        not isinstance(urls, list) or not all(isinstance(u, str) and u for u in urls)
    ):
        return "Invalid request: imageUrls must be a list of strings"
    if mode == "image_to_image" and not urls:
        return "Invalid request: image_to_image needs at least one image in imageUrls"
    return None
