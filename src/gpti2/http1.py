"""HTTP/1.1 framing for one request over one fresh connection, on the standard library's
sockets: what a one-request command (`generate`) sends with.

The standard library's http.client would do, but it imports the email package to parse
headers, a sixth of `generate`'s whole run. This module only frames bytes: the client
(client.py) decides timeouts, retries, redirects and what an answer means. It reads
strictly (a server's bytes are not trusted): bounded lines, a bounded header count, one
Content-Length, chunked or close-delimited bodies, and a body that ends early is an error.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

MAX_LINE = 65536
MAX_HEADERS = 100  # header lines, folded continuations included
MAX_HEAD = 256 * 1024  # all of an answer's header lines together
MAX_INTERIM = 16  # 1xx answers skipped before the real one
READ_SIZE = 1 << 16


class ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.1 answer this module reads."""


def is_digits(value: str) -> bool:
    """ASCII digits only (`'²'.isdigit()` is true, and `int('²')` fails)."""
    return value.isascii() and value.isdigit()


def text(line: bytes) -> str:
    """A head line as text: UTF-8 where it is (a Location naming `café`), else latin-1."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("latin-1")


def connect(
    scheme: str, host: str, port: int | None, timeout: float, tls: object | None = None
) -> socket.socket:
    """A connected socket (wrapped in TLS for https, `tls` being an `ssl.SSLContext`)."""
    port = port or (443 if scheme == "https" else 80)
    name = ascii_host(host)
    # As bytes: a str would go through Python's own IDNA 2003 codec (an import, and for
    # some names another host than httpx reaches).
    sock = socket.create_connection((name.encode("ascii"), port), timeout=timeout)  # type: ignore[arg-type]
    if scheme != "https":
        return sock
    try:
        return tls.wrap_socket(sock, server_hostname=name)  # type: ignore[attr-defined]
    except BaseException:
        sock.close()
        raise


def ascii_host(host: str) -> str:
    """The host as sent: a non-ASCII name in its IDNA 2008 form, as httpx encodes it (so
    `straße.example` is the same host for every command). UnicodeError when it has none."""
    if host.isascii():
        return host
    import idna

    try:
        return idna.encode(host.lower()).decode("ascii")
    except idna.IDNAError as exc:
        raise UnicodeError(f"{host!r} is not a valid domain name ({exc})") from None


def host_header(scheme: str, host: str, port: int | None) -> str:
    """The Host header: the name (IPv6 in brackets, a non-ASCII name in its IDNA form) and
    the port unless it is the default."""
    host = ascii_host(host)
    name = f"[{host}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    return name if port in (None, default) else f"{name}:{port}"


def request_target(path: str, query: str) -> str:
    """The path and query as sent: characters outside ASCII percent-encoded as UTF-8 (as
    httpx sends them); what is already ASCII is left as the URL has it."""
    target = (path or "/") + (f"?{query}" if query else "")
    if target.isascii():
        return target
    from urllib.parse import quote

    return quote(target, safe="".join(chr(c) for c in range(33, 127)))


def head_fields(method: str, headers: dict[str, str], body: bytes | None) -> dict[str, str]:
    """The header fields a request goes out with: `headers` and its Content-Length."""
    if body is not None or method in ("POST", "PUT", "PATCH"):
        return {**headers, "Content-Length": str(len(body or b""))}
    return headers


def request_bytes(method: str, target: str, headers: dict[str, str], body: bytes | None) -> bytes:
    """The request head (and body) as sent. A header that would split the head is refused."""
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in head_fields(method, headers, body).items():
        if any(c in name or c in value for c in "\r\n\0") or ":" in name:
            raise ValueError(f"header {name!r} holds a character a header cannot carry")
        lines.append(f"{name}: {value}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")


class Response:
    """An answer whose head has been read; its body is read by `iter_bytes`. It carries
    the attributes of an httpx response that the client reads."""

    def __init__(self, reader: Reader, method: str, url: str) -> None:
        self.url = url
        self._reader = reader
        for _ in range(MAX_INTERIM + 1):
            self.status_code, self.reason_phrase = reader.status_line()
            fields = reader.header_fields()
            if self.status_code == 101:  # nobody asked to switch protocols
                raise ProtocolError("an unrequested 101 Switching Protocols")
            if not 100 <= self.status_code < 200:
                break
        else:
            raise ProtocolError(f"more than {MAX_INTERIM} interim (1xx) answers")
        self.headers: dict[str, str] = {}
        for name, value in fields:
            key = name.lower()  # as httpx shows them
            self.headers[key] = f"{self.headers[key]}, {value}" if key in self.headers else value
        self.set_cookies = tuple(v for n, v in fields if n.lower() == "set-cookie")
        self._framing = self._body_framing(method)

    def _body_framing(self, method: str) -> tuple[str, int]:
        if method == "HEAD" or self.status_code in (204, 304):
            return "length", 0
        coding = self.headers.get("transfer-encoding")
        if coding is not None:
            codings = [c.strip(" \t").lower() for c in coding.split(",")]
            if codings != ["chunked"]:
                raise ProtocolError(f"unsupported Transfer-Encoding {coding[:60]!r}")
            return "chunked", 0
        length = self.headers.get("content-length")
        if length is None:
            return "close", 0
        values = {v.strip(" \t") for v in length.split(",")}
        value = values.pop()
        if values or not is_digits(value) or len(value) > 18:
            raise ProtocolError(f"bad Content-Length {length[:60]!r}")
        return "length", int(value)

    def iter_bytes(self) -> Iterator[bytes]:
        """The body, each piece as it arrives (one read at most), so a deadline is seen."""
        kind, size = self._framing
        if kind == "chunked":
            yield from self._reader.chunked()
        elif kind == "length":
            yield from self._reader.exactly(size)
        else:
            yield from self._reader.until_close()


class Reader:
    """Bounded reads of an answer's lines and body from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._file = sock.makefile("rb")

    def close(self) -> None:
        self._file.close()

    def _line(self, what: str) -> bytes:
        line = self._file.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise ProtocolError(f"{what} longer than {MAX_LINE} bytes")
        if line and not line.endswith(b"\n"):
            raise ConnectionError(f"the server closed the connection within a {what}")
        return line

    def status_line(self) -> tuple[int, str]:
        line = self._line("status line")
        if not line:
            raise ConnectionError("the server closed the connection without an answer")
        version, _, rest = text(line).rstrip("\r\n").partition(" ")
        code, _, reason = rest.partition(" ")
        if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not is_digits(code):
            raise ProtocolError(f"not an HTTP/1.1 status line: {line[:60]!r}")
        if int(code) < 100:
            raise ProtocolError(f"no such status: {code}")
        return int(code), reason.strip(" \t")

    def header_fields(self) -> list[tuple[str, str]]:
        """The header lines up to the blank one, as (name, value); at most MAX_HEADERS
        lines (a folded continuation counts) and MAX_HEAD bytes."""
        pieces: list[tuple[str, list[str]]] = []
        lines = size = 0
        while True:
            line = text(self._line("header line"))
            if not line:
                raise ConnectionError("the server closed the connection within the headers")
            if line in ("\r\n", "\n"):
                return [(name, " ".join(parts)) for name, parts in pieces]
            lines, size = lines + 1, size + len(line)
            if lines > MAX_HEADERS or size > MAX_HEAD:
                raise ProtocolError(f"more than {MAX_HEADERS} header lines or {MAX_HEAD} bytes")
            if line[0] in " \t" and pieces:  # an obsolete folded continuation
                pieces[-1][1].append(line.strip(" \t\r\n"))
                continue
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip(" \t"):
                raise ProtocolError(f"not a header line: {line[:60]!r}")
            pieces.append((name, [value.strip(" \t\r\n")]))

    def exactly(self, size: int) -> Iterator[bytes]:
        left = size
        while left:
            piece = self._file.read1(min(left, READ_SIZE))
            if not piece:
                raise ConnectionError(
                    f"the server closed the connection {left} bytes before the end of the body"
                )
            left -= len(piece)
            yield piece

    def until_close(self) -> Iterator[bytes]:
        while piece := self._file.read1(READ_SIZE):
            yield piece

    def chunked(self) -> Iterator[bytes]:
        while True:
            line = self._line("chunk size line")
            if not line:
                raise ConnectionError("the server closed the connection within a chunked body")
            digits = line.split(b";", 1)[0].strip()
            if not digits or len(digits) > 15 or digits.strip(b"0123456789abcdefABCDEF"):
                raise ProtocolError(f"bad chunk size line: {line[:60]!r}")
            size = int(digits, 16)
            if size == 0:
                break
            yield from self.exactly(size)
            if self._line("chunk end") not in (b"\r\n", b"\n"):
                raise ProtocolError("a chunk does not end where its size says")
        for _ in range(MAX_HEADERS + 1):  # trailer fields, then the blank line
            if self._line("trailer line") in (b"\r\n", b"\n", b""):
                return
        raise ProtocolError(f"more than {MAX_HEADERS} trailer lines")
