"""HTTP/1.1 framing of `generate`'s one request (gpti2/http1.py), over a socket pair: what
a server's bytes may and may not do. End to end (through the CLI) see test_hostile.py."""

from __future__ import annotations

import socket

import pytest

from gpti2 import http1


def answer(raw: bytes, method: str = "POST") -> tuple[http1.Response, bytes]:
    """Read `raw` as the server's answer: the response and its whole body."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(raw)
        theirs.shutdown(socket.SHUT_WR)
        reader = http1.Reader(ours)
        try:
            resp = http1.Response(reader, method, "http://127.0.0.1/x")
            return resp, b"".join(resp.iter_bytes())
        finally:
            reader.close()


def test_a_content_length_body_is_read_to_its_length_and_no_further() -> None:
    resp, body = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, and more")
    assert (resp.status_code, resp.reason_phrase, body) == (200, "OK", b"hello")


def test_a_chunked_body_with_extensions_and_trailers_is_joined() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n1\r\n,\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    assert answer(raw)[1] == b"hello, world"


def test_without_a_length_the_body_ends_when_the_server_closes() -> None:
    assert answer(b"HTTP/1.0 200 OK\r\n\r\nall of it")[1] == b"all of it"


@pytest.mark.parametrize("status", [204, 304])
def test_answers_without_a_body_read_none(status: int) -> None:
    raw = b"HTTP/1.1 %d X\r\nContent-Length: 9\r\n\r\nnot body" % status
    assert answer(raw)[1] == b""
    assert answer(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", method="HEAD")[1] == b""


def test_interim_answers_are_skipped_and_an_endless_run_of_them_refused() -> None:
    resp, body = answer(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    )
    assert (resp.status_code, body) == (201, b"ok")
    assert "link" not in resp.headers
    with pytest.raises(http1.ProtocolError, match="interim"):
        answer(b"HTTP/1.1 100 Continue\r\n\r\n" * 40)


def test_headers_are_lower_case_repeats_joined_and_set_cookies_kept_apart() -> None:
    resp, _ = answer(
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nX-Folded: one\r\n  two\r\n"
        b"Set-Cookie: a=1; Expires=Wed, 01 Jan 2031 00:00:00 GMT\r\nSet-Cookie: b=2\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert resp.headers["x-a"] == "1, 2"
    assert resp.headers["x-folded"] == "one two"
    assert resp.set_cookies == ("a=1; Expires=Wed, 01 Jan 2031 00:00:00 GMT", "b=2")


@pytest.mark.parametrize(
    ("head", "complaint"),
    [
        (b"Content-Length: 5\r\nContent-Length: 6", "Content-Length"),
        (b"Content-Length: -1", "Content-Length"),
        (b"Content-Length: 0x10", "Content-Length"),
        (b"Content-Length: 99999999999999999999", "Content-Length"),
        (b"Transfer-Encoding: gzip, chunked", "Transfer-Encoding"),
        (b"Transfer-Encoding: identity", "Transfer-Encoding"),
        (b"no colon here", "not a header line"),
        (b"Name : value", "not a header line"),
        (b": value", "not a header line"),
        (b"X: " + b"a" * 70000, "longer than"),
        (b"\r\n".join(b"X-%d: 1" % n for n in range(101)), "more than 100 header"),
    ],
)
def test_a_malformed_head_is_refused(head: bytes, complaint: str) -> None:
    with pytest.raises(http1.ProtocolError, match=complaint):
        answer(b"HTTP/1.1 200 OK\r\n" + head + b"\r\n\r\nbody")


def test_the_same_length_twice_is_one_length() -> None:
    assert answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nokay")[1] == b"ok"


@pytest.mark.parametrize(
    "line", [b"HTTP/2 200 OK", b"ICY 200 OK", b"HTTP/1.1 20 OK", b"HTTP/1.1 abc", b"<html>"]
)
def test_a_status_line_that_is_not_http_1_is_refused(line: bytes) -> None:
    with pytest.raises(http1.ProtocolError, match="status line"):
        answer(line + b"\r\n\r\n")


@pytest.mark.parametrize(
    "raw",
    [
        b"",  # closed before answering
        b"HTTP/1.1 200 OK\r\nContent-Le",  # closed within the headers
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    ],
)
def test_an_answer_cut_short_is_a_connection_error(raw: bytes) -> None:
    with pytest.raises(ConnectionError):
        answer(raw)


@pytest.mark.parametrize(
    "chunks", [b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhello!!\r\n0\r\n\r\n", b"\r\n"]
)
def test_a_chunked_body_that_lies_about_its_sizes_is_refused(chunks: bytes) -> None:
    with pytest.raises(http1.ProtocolError, match="chunk"):
        answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)


def test_the_request_head_carries_a_length_and_refuses_a_header_that_splits_it() -> None:
    sent = http1.request_bytes("POST", "/api/x?a=1", {"Host": "h", "X-K": "v"}, b'{"a": 1}')
    assert sent == (
        b'POST /api/x?a=1 HTTP/1.1\r\nHost: h\r\nX-K: v\r\nContent-Length: 8\r\n\r\n{"a": 1}'
    )
    assert b"Content-Length: 0\r\n" in http1.request_bytes("POST", "/", {}, None)
    assert b"Content-Length" not in http1.request_bytes("GET", "/", {}, None)
    for name, value in (("X", "a\r\nInjected: 1"), ("X\nY", "v"), ("X:Y", "v"), ("X", "\0")):
        with pytest.raises(ValueError, match="cannot carry"):
            http1.request_bytes("GET", "/", {name: value}, None)


@pytest.mark.parametrize(
    ("scheme", "host", "port", "header"),
    [
        ("http", "127.0.0.1", 8787, "127.0.0.1:8787"),
        ("http", "example.com", 80, "example.com"),
        ("https", "example.com", 443, "example.com"),
        ("https", "example.com", 80, "example.com:80"),
        ("http", "::1", 8080, "[::1]:8080"),
        ("https", "::1", None, "[::1]"),
        ("https", "bücher.example", 8443, "xn--bcher-kva.example:8443"),
        ("https", "straße.example", None, "xn--strae-oqa.example"),  # IDNA 2008, as httpx
    ],
)
def test_the_host_header_omits_the_default_port(scheme, host, port, header) -> None:
    assert http1.host_header(scheme, host, port) == header


def test_a_target_outside_ascii_is_sent_percent_encoded_as_utf8() -> None:
    assert http1.request_target("/€/ä b", "q=ü") == "/%E2%82%AC/%C3%A4%20b?q=%C3%BC"
    assert http1.request_target("/a%20b", "x=1&y=/") == "/a%20b?x=1&y=/"
    assert http1.request_target("", "") == "/"
