"""A raw-socket HTTP server on 127.0.0.1 that answers what a hostile (or broken) server
would: wrong lengths, cut bodies, lying headers, slow drips, escape sequences.

Each route maps a request path (query ignored) to an answer: raw bytes, or a list of
`(bytes, delay)` pieces sent one after another. Every connection is closed after one
answer, so a cut or a missing Content-Length is simply the end of the stream.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Piece = tuple[bytes, float]
Answer = bytes | list[Piece]


@dataclass
class Request:
    method: str
    path: str
    target: str
    headers: dict[str, str]
    body: bytes


def response(
    status: int = 200,
    body: bytes | str | Any = b"",
    *,
    headers: dict[str, str] | None = None,
    reason: str = "OK",
    length: int | str | None = "auto",
) -> bytes:
    """Raw HTTP/1.1 response bytes; `length` None omits Content-Length, an int lies."""
    if not isinstance(body, bytes | str):
        body = json.dumps(body, allow_nan=True)
        headers = {"Content-Type": "application/json", **(headers or {})}
    if isinstance(body, str):
        body = body.encode()
    lines = [f"HTTP/1.1 {status} {reason}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if length == "auto":
        lines.append(f"Content-Length: {len(body)}")
    elif length is not None:
        lines.append(f"Content-Length: {length}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def envelope(data: Any) -> dict[str, Any]:
    return {"code": 0, "message": "ok", "data": data}


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


class HostileServer:
    """Serve `routes` (path -> answer or callable(Request) -> answer) on a free port."""

    def __init__(self) -> None:
        self.routes: dict[str, Answer | Callable[[Request], Answer]] = {}
        self.requests: list[Request] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(32)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def route(self, path: str, answer: Answer | Callable[[Request], Answer]) -> None:
        self.routes[path] = answer

    def close(self) -> None:
        self._stop.set()
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                request = self._read(conn)
                if request is None:
                    return
                self.requests.append(request)
                answer = self.routes.get(request.path)
                if answer is None:
                    answer = response(404, {"error": f"no route {request.path}"})
                if callable(answer):
                    answer = answer(request)
                pieces = [(answer, 0.0)] if isinstance(answer, bytes) else answer
                for data, delay in pieces:
                    if delay:
                        time.sleep(delay)
                    if self._stop.is_set():
                        return
                    conn.sendall(data)
            except OSError:
                return  # the client left: that is its right

    @staticmethod
    def _read(conn: socket.socket) -> Request | None:
        conn.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return Request(method, target.split("?", 1)[0], target, headers, body)
