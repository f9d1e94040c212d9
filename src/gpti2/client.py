"""The one HTTP client, the transport: timeouts, retries, redirects, the body limit,
credentials to the base origin only, redaction of what it logs.

What answers mean (envelopes, error text, status to error) is the wire (wire.py); when a
request is sent again is its named retry policy (retry.py).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from gpti2 import __version__, http1
from gpti2.display import REDACTED, add_secret, redact, shown
from gpti2.errors import AuthError, Gpti2Error, MayHaveRunError, ServerError, UsageError
from gpti2.retry import (
    RETRY_AFTER_CAP,
    RetryPolicy,
    backoff_delay,
    come_back_at,
    parse_retry_after,
)
from gpti2.wire import (
    Reply,
    error_for_status,
    error_text,
    host_of,
    loads,
    unwrap,
)

if TYPE_CHECKING:
    import httpx

    from gpti2.dialects import ServerApi

__all__ = ["ApiClient", "Credentials", "Reply", "RetryPolicy", "error_text", "host_of", "loads"]

MAX_BODY = 64 * 1024 * 1024
MAX_REDIRECTS = 5
CONNECT_TIMEOUT = 15.0
SECRET_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})
SECRET_FIELDS = frozenset({"password", "token"})  # JSON fields never shown by -v
VERBOSE_BODY = 2000  # characters of a body -v shows

Log = Callable[[str], None]
Progress = Callable[[int, int | None], None]


class Credentials:
    """A token and how it is sent."""

    __slots__ = ("cookie_name", "scheme", "token")

    def __init__(
        self, token: str, scheme: str = "bearer", cookie_name: str = "better-auth.session_token"
    ) -> None:
        from gpti2.credentials import cookie_name_problem, token_problem

        self.token, self.scheme, self.cookie_name = token, scheme, cookie_name
        add_secret(self.token)
        problem = token_problem(self.token)
        if problem:
            raise AuthError(
                f"the stored token {problem}; it cannot be sent in an HTTP header",
                hint="sign in again with `gpti2 auth login`, or fix GPTI2_TOKEN",
            )
        if self.scheme == "cookie":
            problem = cookie_name_problem(self.cookie_name)
            if problem:
                raise UsageError(
                    f"bad cookie_name: {problem}",
                    hint="set it with `gpti2 config set cookie_name NAME`",
                )
            if ";" in self.token or "," in self.token:
                raise AuthError(
                    "the stored session value holds ';' or ',', which a cookie cannot carry",
                    hint="sign in again with `gpti2 auth login`",
                )

    def headers(self) -> dict[str, str]:
        if self.scheme == "cookie":
            return {"Cookie": f"{self.cookie_name}={self.token}"}
        return {"Authorization": f"Bearer {self.token}"}

    def __repr__(self) -> str:  # never show the token, even in a traceback
        return f"Credentials(scheme={self.scheme!r}, token={REDACTED})"


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def checked_url(url: str, what: str) -> str:
    """`url` when it is an http(s) URL with a host and a valid port; a malformed response
    (exit 6) naming `what` otherwise (the URL came from a server)."""
    from gpti2.settings import url_problem

    problem = url_problem(url)
    if problem:
        raise ServerError(f"malformed response: {what} {shown(url, 100)!r} {problem}")
    return url


def is_loopback(host: str) -> bool:
    """Only 127.0.0.0/8, ::1 and the exact name `localhost` (not `evil.localhost`)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_link_local(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_link_local or bool(mapped and mapped.is_link_local)


def refuse_link_local(url: str) -> None:
    """Refuse a server-given URL whose host is (or resolves to) a link-local address
    (169.254.0.0/16, fe80::/10: cloud metadata services live there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, parts.port or None)}
    except (OSError, UnicodeError):
        addresses = {host}  # unresolvable: the request itself will fail and say so
    if any(_is_link_local(address) for address in addresses | {host}):
        raise ServerError(
            f"refusing to download from {host_of(url)}: it is a link-local address",
            hint="a result URL should name a public server or CDN",
        )


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: REDACTED if str(k).lower() in SECRET_FIELDS else _redact_json(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_json(v) for v in value]
    if isinstance(value, str):
        value = redact(value)  # before cutting, so no part of a secret survives the cut
        if len(value) > 120:
            return f"{value[:60]}… ({len(value)} chars)"
    return value


class TransportFailure(Exception):
    """A request that failed below HTTP, on either transport: not sent, timed out, or cut."""

    def __init__(self, cause: BaseException, *, not_sent: bool, timed_out: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.not_sent = not_sent
        self.timed_out = timed_out
        self.url: str | None = None  # the hop it failed on, when a redirect led there


class _PooledTransport:
    """httpx with keep-alive connections, safe across threads: for commands that send many
    requests (jobs, batch, downloads)."""

    def __init__(
        self, timeout: float, headers: dict[str, str], transport: httpx.BaseTransport | None
    ) -> None:
        import httpx

        limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)
        mounts = None
        if transport is None:
            # Plain http (the emulator, loopback rehearsals) never needs TLS; building the
            # verifying TLS context costs ~30 ms, so https gets its transport on first use.
            transport = _lazy_transport(lambda: httpx.HTTPTransport(verify=_tls(), limits=limits))
            mounts = {"http://": httpx.HTTPTransport(verify=False, limits=limits)}
        self._timeout = timeout
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
            follow_redirects=False,
            transport=transport,
            mounts=mounts,
            headers=headers,
            trust_env=False,
        )

    @contextlib.contextmanager
    def stream(
        self,
        method: str,
        url: str,
        content: bytes | None,
        headers: dict[str, str],
        deadline: float,
    ) -> Iterator[Any]:
        import httpx

        # Connecting stops short of the whole request's deadline (every redirect hop
        # included), so a connect that never completes is a connect timeout: not sent,
        # retried, rather than a request cut mid-way that "may have been generated".
        left = max(deadline - time.monotonic(), 0.001)
        timeout = httpx.Timeout(self._timeout, connect=min(left * 0.9, CONNECT_TIMEOUT))
        try:
            with self._http.stream(
                method, url, content=content, headers=headers, timeout=timeout
            ) as resp:
                yield resp
        except httpx.TransportError as exc:
            raise TransportFailure(
                exc,
                not_sent=isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout),
                timed_out=isinstance(exc, httpx.TimeoutException),
            ) from exc
        except httpx.DecodingError as exc:
            raise ServerError(
                f"malformed response from {host_of(url)}: the body does not match its"
                f" Content-Encoding ({shown(exc, 100)})"
            ) from None

    def sent_headers(
        self, method: str, url: str, content: bytes | None, headers: dict[str, str]
    ) -> list[tuple[str, str]]:
        """Every header the request goes out with (for -v), as httpx builds them."""
        request = self._http.build_request(method, url, content=content, headers=headers)
        return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in request.headers.raw]

    def close(self) -> None:
        self._http.close()


def _lazy_transport(factory: Callable[[], httpx.BaseTransport]) -> httpx.BaseTransport:
    """A transport built on its first request."""
    import httpx

    class LazyTransport(httpx.BaseTransport):
        def __init__(self) -> None:
            self._inner: httpx.BaseTransport | None = None
            self._lock = threading.Lock()

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            with self._lock:
                if self._inner is None:
                    self._inner = factory()
            return self._inner.handle_request(request)

        def close(self) -> None:
            if self._inner is not None:
                self._inner.close()

    return LazyTransport()


class _SingleTransport:
    """One fresh connection per request and none kept, framed by `http1` on the standard
    library's sockets: for a command that sends one request (`generate`), it starts sooner
    than httpx. TLS trusts what httpx trusts (SSL_CERT_FILE, SSL_CERT_DIR, else certifi's
    bundle)."""

    def __init__(self, timeout: float, headers: dict[str, str]) -> None:
        self._timeout = timeout
        self._headers = {
            **headers,
            "Accept": "*/*",
            "Accept-Encoding": "identity",
            "Connection": "close",
        }

    @contextlib.contextmanager
    def stream(
        self,
        method: str,
        url: str,
        content: bytes | None,
        headers: dict[str, str],
        deadline: float,
    ) -> Iterator[http1.Response]:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme, parts.hostname or "", parts.port
        tls = _tls() if scheme == "https" else None
        try:
            left = max(deadline - time.monotonic(), 0.001)
            sock = http1.connect(scheme, host, port, min(left, CONNECT_TIMEOUT), tls)
        except (OSError, UnicodeError) as exc:
            raise TransportFailure(
                exc, not_sent=True, timed_out=isinstance(exc, TimeoutError)
            ) from exc
        except _PastDeadline:  # the whole request's time ran out before anything was sent
            timeout = TimeoutError("connecting took the whole timeout")
            raise TransportFailure(timeout, not_sent=True, timed_out=True) from None
        reader = None
        try:
            sock.settimeout(self._timeout)
            target = http1.request_target(parts.path, parts.query)
            try:
                sock.sendall(
                    http1.request_bytes(method, target, self._fields(url, headers), content)
                )
                reader = http1.Reader(sock)
                resp = http1.Response(reader, method, url)
            except (OSError, http1.ProtocolError) as exc:
                raise _cut(exc) from exc
            yield _SingleResponse(resp)
        finally:
            if reader is not None:
                reader.close()
            sock.close()

    def _fields(self, url: str, headers: dict[str, str]) -> dict[str, str]:
        parts = urlsplit(url)
        host = http1.host_header(parts.scheme, parts.hostname or "", parts.port)
        return {"Host": host, **self._headers, **headers}

    def sent_headers(
        self, method: str, url: str, content: bytes | None, headers: dict[str, str]
    ) -> list[tuple[str, str]]:
        """Every header the request goes out with (for -v)."""
        return list(http1.head_fields(method, self._fields(url, headers), content).items())

    def close(self) -> None:
        pass


class _PastDeadline(Exception):
    """Raised by SIGALRM in the main thread when a request outlives its timeout."""


@contextlib.contextmanager
def _deadline_alarm(deadline: float) -> Iterator[None]:
    """In the main thread, interrupt whatever a request waits on (connecting, a header
    dripping in, the body) at `deadline`: a request cut mid-way, unless the transport
    knew nothing was sent yet. In other threads (batch workers) the body loop's own check
    of the deadline is the bound."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    armed = [True]

    def ring(signum: int, frame: object) -> None:
        if armed[0]:
            raise _PastDeadline

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 0.001))
    try:
        yield
    except _PastDeadline:
        raise _cut(TimeoutError("the whole request took too long")) from None
    finally:
        armed[0] = False  # first: a late ring must not fail a request that finished
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _cut(exc: BaseException) -> TransportFailure:
    return TransportFailure(exc, not_sent=False, timed_out=isinstance(exc, TimeoutError))


def _tls() -> Any:
    """The verifying TLS context of both transports: the certificates SSL_CERT_FILE or
    SSL_CERT_DIR name (as httpx reads them), else certifi's bundle; exit 2 when unreadable."""
    import ssl

    for var, key in (("SSL_CERT_FILE", "cafile"), ("SSL_CERT_DIR", "capath")):
        if os.environ.get(var):
            try:
                if key == "capath" and not os.path.isdir(os.environ[var]):
                    raise NotADirectoryError("not a folder")  # else only failed handshakes tell
                return ssl.create_default_context(**{key: os.environ[var]})
            except (OSError, ssl.SSLError) as exc:
                raise UsageError(
                    f"cannot read the certificates {var} names"
                    f" ({shown(os.environ[var], 100)}): {shown(exc, 100)}",
                    hint=f"point {var} at your CA certificates (PEM), or unset it",
                ) from None
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class _SingleResponse:
    """An `http1` response whose body reads fail as the transport fails."""

    def __init__(self, resp: http1.Response) -> None:
        self._resp = resp
        self.url = resp.url
        self.status_code = resp.status_code
        self.reason_phrase = resp.reason_phrase
        self.headers = resp.headers
        self.set_cookies = resp.set_cookies

    def iter_bytes(self) -> Iterator[bytes]:
        """Each piece as it arrives (one read at most), so a deadline is seen."""
        pieces = self._resp.iter_bytes()
        while True:
            try:
                piece = next(pieces, None)
            except (OSError, http1.ProtocolError) as exc:
                raise _cut(exc) from exc
            if piece is None:
                return
            yield piece


def _default_policy(method: str) -> RetryPolicy:
    return RetryPolicy.IDEMPOTENT if method.upper() in ("GET", "HEAD") else RetryPolicy.PAID_POST


def _set_cookies(resp: Any) -> tuple[str, ...]:
    """Each Set-Cookie header on its own (joined with commas they cannot be told apart)."""
    if hasattr(resp, "set_cookies"):
        return resp.set_cookies
    return tuple(resp.headers.get_list("set-cookie"))


def may_have_run(error: Gpti2Error) -> MayHaveRunError:
    """The error of a paid request the server may have acted on, which is not sent again."""
    return MayHaveRunError(
        f"{error.message}; not sent again: the image may have been generated (and charged)",
        hint="check your account or the site before generating it again",
    )


class ApiClient:
    """HTTP access to one base URL, with the rules of API.md §3 and §4."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 120.0,
        retries: int = 3,
        credentials: Credentials | None = None,
        allow_insecure_http: bool = False,
        log: Log | None = None,
        transport: httpx.BaseTransport | None = None,
        pooled: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        max_body: int = MAX_BODY,
        api: ServerApi | None = None,
    ) -> None:
        """`pooled=False` sends with the standard library, one connection per request: it
        starts faster, for a command that sends one request. A `transport` (tests) means
        httpx. `api` is the server's dialect with this profile's routes (the project's own
        by default)."""
        from gpti2.dialects import ServerApi

        self.api = api or ServerApi.default()
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.credentials = credentials
        self.allow_insecure_http = allow_insecure_http
        self._log = log
        self._sleep = sleep
        self.max_body = max_body
        headers = {"User-Agent": f"gpti2/{__version__}"}
        self._transport: _PooledTransport | _SingleTransport = (
            _PooledTransport(timeout, headers, transport)
            if pooled or transport is not None
            else _SingleTransport(timeout, headers)
        )
        self.timeout = timeout

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def url_for(self, path_or_url: str) -> str:
        """An absolute URL: a full URL as is, a path joined to the base URL."""
        if re.match(r"^[a-z][a-z0-9+.-]*://", path_or_url, re.IGNORECASE):
            return path_or_url
        return self.base_url + "/" + path_or_url.lstrip("/")

    # -- public calls ---------------------------------------------------------------

    def call(
        self, method: str, path: str, *, policy: RetryPolicy | None = None, **kwargs: Any
    ) -> Any:
        """Send a request and return its JSON payload, envelope unwrapped (worded by the
        server's dialect). Under the idempotent policy an envelope that reports a server-side
        failure (exit 6) is retried like a 500."""
        return self.exchange(method, path, policy=policy, **kwargs)[0]

    def exchange(
        self, method: str, path: str, *, policy: RetryPolicy | None = None, **kwargs: Any
    ) -> tuple[Any, Reply]:
        """As `call`, with the reply too (its headers: a status answer's Retry-After)."""
        policy = policy or _default_policy(method)
        attempt = 0
        while True:
            reply = self.send(method, path, policy=policy, **kwargs)
            try:
                return unwrap(reply.json(), self.api.envelope_error), reply
            except ServerError as error:
                if policy.paid or attempt >= self.retries:
                    raise error.redact(self._secret()) from None
                self._wait(attempt, None, f"server error {error.message!r}")
                attempt += 1
            except Gpti2Error as error:
                raise error.redact(self._secret()) from None

    def send(
        self,
        method: str,
        path: str,
        *,
        policy: RetryPolicy | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        auth: bool = False,
        sink: Callable[[], IO[bytes]] | None = None,
        progress: Progress | None = None,
        secret_body: bool = False,
    ) -> Reply:
        """Send, repeating only what `policy` allows (by default: idempotent for GET, a paid
        POST for anything else, so nothing that makes an image is ever sent twice by
        mistake); `sink` streams a 2xx body into a fresh file object per attempt instead
        of memory. A `secret_body` (a password) goes to the base origin only, never over
        plain http to another host, and never follows a redirect elsewhere."""
        policy = policy or _default_policy(method)
        url = checked_url(self.url_for(path), "the URL")
        if secret_body and origin(url) != origin(self.base_url):
            raise UsageError(f"refusing to send credentials to {host_of(url)}")
        sends_credentials = secret_body or (auth and self.credentials is not None)
        if sends_credentials and origin(url) == origin(self.base_url):
            self._check_credentials_allowed(url)
        attempt = 0
        while True:
            # One attempt, bounded as a whole by the timeout: connecting, the headers, the
            # body and any redirects.
            deadline = time.monotonic() + self.timeout
            try:
                with _deadline_alarm(deadline):
                    reply = self._hops(
                        method, url, json_body, headers, auth, sink, progress, secret_body, deadline
                    )
            except TransportFailure as failure:
                if attempt < self.retries and policy.retries_failure(not_sent=failure.not_sent):
                    self._wait(attempt, None, type(failure.cause).__name__)
                    attempt += 1
                    continue
                raise self._transport_error(failure, failure.url or url, policy) from None
            if policy.retries_status(reply.status) and attempt < self.retries:
                self._wait(attempt, reply.headers.get("retry-after"), str(reply.status))
                attempt += 1
                continue
            if reply.status >= 400:
                error = error_for_status(reply).redact(self._secret())
                if isinstance(error, ServerError) and policy.paid:
                    error = may_have_run(error)  # 429/502/503/504 said: not taken
                raise error
            return reply

    # -- internals ------------------------------------------------------------------

    def _check_credentials_allowed(self, url: str) -> None:
        scheme, host, _ = origin(url)
        if scheme == "http" and not is_loopback(host) and not self.allow_insecure_http:
            raise UsageError(
                f"refusing to send credentials over plain http:// to {host}",
                hint="use https://, or pass --allow-insecure-http if you really mean it",
            )

    def _wait(self, attempt: int, retry_after: str | None, why: str) -> None:
        delay = parse_retry_after(retry_after)
        if delay is not None and delay > RETRY_AFTER_CAP:
            raise ServerError(
                f"the server asks to wait {delay:.0f} s before trying again ({why})",
                hint=f"come back after {come_back_at(delay)}",
            )
        if delay is None:
            delay = backoff_delay(attempt)
        self._emit(f"* retry {attempt + 1}/{self.retries} after {why}, waiting {delay:.2f} s")
        self._sleep(delay)

    def _transport_error(self, exc: TransportFailure, url: str, policy: RetryPolicy) -> Gpti2Error:
        host = host_of(url)
        if exc.timed_out and not exc.not_sent:
            error = ServerError(
                f"no answer from {host} within {self.timeout:g} s",
                hint="try again, or raise --timeout",
            )
        elif exc.not_sent:
            error = ServerError(
                f"cannot connect to {host}: {exc}", hint="check the base URL and your network"
            )
        else:
            error = ServerError(f"connection to {host} failed: {exc}")
        if policy.paid and not exc.not_sent:
            return may_have_run(error)
        return error

    def _hops(
        self,
        method: str,
        url: str,
        json_body: Any,
        headers: dict[str, str] | None,
        auth: bool,
        sink: Callable[[], IO[bytes]] | None,
        progress: Progress | None,
        secret_body: bool,
        deadline: float,
    ) -> Reply:
        base_origin = origin(self.base_url)
        send_credentials = auth and self.credentials is not None
        try:
            for _hop in range(MAX_REDIRECTS + 1):
                if origin(url) != base_origin:
                    refuse_link_local(url)
                request_headers = dict(headers or {})
                if json_body is not None:
                    request_headers["Content-Type"] = "application/json"
                if send_credentials and origin(url) == base_origin:
                    request_headers.update(self.credentials.headers())  # type: ignore[union-attr]
                content = None if json_body is None else json.dumps(json_body).encode()
                if self._log is not None:
                    sent = self._transport.sent_headers(method, url, content, request_headers)
                    self._log_request(method, url, sent, json_body)
                started = time.monotonic()
                stream = self._transport.stream(method, url, content, request_headers, deadline)
                with stream as resp:
                    location = resp.headers.get("location")
                    if 300 <= resp.status_code < 400:
                        if resp.status_code not in (301, 302, 303, 307, 308) or not location:
                            raise ServerError(
                                f"unexpected {resp.status_code} {shown(resp.reason_phrase, 60)}"
                                f" from {host_of(url)}"
                                + ("" if location else " (no Location to follow)")
                            )
                        self._emit(f"< {resp.status_code} redirect to {location}")
                        try:
                            joined = urljoin(url, location)
                        except ValueError:  # `http://[::1/x`: urljoin itself refuses it
                            joined = location
                        url = checked_url(joined, "the redirect Location")
                        if origin(url) != base_origin:
                            if secret_body:
                                raise ServerError(
                                    f"{host_of(self.base_url)} redirected the sign-in to"
                                    f" {host_of(url)}; the password was not sent there"
                                )
                            send_credentials = False  # never again on this request
                        if resp.status_code == 303 or (
                            resp.status_code in (301, 302) and method == "POST"
                        ):
                            method, json_body = "GET", None
                        continue
                    ok = 200 <= resp.status_code < 300
                    if sink is not None and ok and resp.status_code != 200:
                        # 206 (a part of the file) or 204 (none of it) is not a download.
                        raise ServerError(
                            f"download from {host_of(url)} answered {resp.status_code}"
                            f" {shown(resp.reason_phrase, 60)}, not the whole file; refused"
                        )
                    target = sink() if (sink is not None and ok) else None
                    body = self._read_body(resp, target, progress if ok else None, deadline)
                    reply = Reply(
                        resp.status_code,
                        resp.reason_phrase,
                        resp.headers,
                        body,
                        str(resp.url),
                        _set_cookies(resp),
                    )
                    self._log_response(reply, time.monotonic() - started, target is not None)
                    return reply
        except TransportFailure as failure:
            failure.url = url  # the hop it failed on: the error names that host
            raise
        raise ServerError(f"too many redirects (more than {MAX_REDIRECTS}) from {host_of(url)}")

    def _read_body(
        self,
        resp: httpx.Response,
        target: IO[bytes] | None,
        progress: Progress | None,
        deadline: float,
    ) -> bytearray:
        """The body, bounded; `resp` is an httpx response or a _SingleResponse."""
        length = resp.headers.get("content-length")
        total = int(length) if length and http1.is_digits(length) and len(length) < 19 else None
        if total is not None and total > self.max_body:
            raise ServerError(self._too_large(resp))
        body = bytearray()
        received = 0
        if progress:
            progress(0, total)
        for chunk in resp.iter_bytes():  # each chunk as it comes, so the deadline is seen
            if time.monotonic() > deadline:
                raise _cut(TimeoutError("the whole request took too long"))
            received += len(chunk)
            if received > self.max_body:
                raise ServerError(self._too_large(resp))
            if target is not None:
                target.write(chunk)
            else:
                body += chunk
            if progress:
                progress(received, total)
        return body

    def _too_large(self, resp: httpx.Response) -> str:
        return (
            f"response from {host_of(str(resp.url))} is larger than "
            f"{self.max_body // (1024 * 1024)} MiB; refused"
        )

    def _secret(self) -> str | None:
        return self.credentials.token if self.credentials else None

    def _emit(self, line: str) -> None:
        if self._log is not None:
            self._log(shown(line, None, secrets=[self._secret()]))

    def _log_request(
        self, method: str, url: str, headers: list[tuple[str, str]], json_body: Any
    ) -> None:
        self._emit(f"> {method} {url}")
        for name, value in headers:
            self._emit(f"> {name}: {REDACTED if name.lower() in SECRET_HEADERS else value}")
        if json_body is not None:
            self._emit("> " + json.dumps(_redact_json(json_body), ensure_ascii=False))

    def _log_response(self, reply: Reply, seconds: float, streamed: bool) -> None:
        if self._log is None:
            return
        self._emit(f"< {reply.status} {reply.reason} ({seconds * 1000:.0f} ms)")
        for name, value in reply.headers.items():
            self._emit(f"< {name}: {REDACTED if name.lower() in SECRET_HEADERS else value}")
        if streamed or not reply.body:
            return
        try:
            preview = json.dumps(_redact_json(loads(reply.body)), ensure_ascii=False)
        except ValueError:
            preview = bytes(reply.body[:4096]).decode("utf-8", "replace")
        line = shown(preview, None, secrets=[self._secret()])
        if len(line) > VERBOSE_BODY or len(reply.body) > 4096:  # say that it is cut
            line = f"{line[:VERBOSE_BODY]}… (body of {len(reply.body)} bytes)"
        self._emit("< " + line)
