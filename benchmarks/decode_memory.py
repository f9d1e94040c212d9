"""Peak memory of the real `gpti2 generate` command receiving a 16 MiB image, above an
idle Python process (budget, issue 12: under 4x the image size, for both bodies).

A server in this process answers the quick route with the image as base64 JSON, once
plainly and once with every `/` escaped as `\\/` (legal JSON some servers write). Each
`gpti2 generate` runs as its own process; its peak is the kernel's ru_maxrss, which
counts everything the process ever held, imports included. The idle baseline is
`python -c pass`; the same command fetching a tiny image is shown for comparison.
Linux only. Run: python benchmarks/decode_memory.py
"""

from __future__ import annotations

import base64
import json
import os
import struct
import sys
import tempfile
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from _common import gpti2, peak_rss

SIZE = 16 * 1024 * 1024
BUDGET = 4.0
MIB = 1024 * 1024


def png(size: int) -> bytes:
    """A PNG of about `size` bytes whose chunks and checksums are whole (gpti2 checks
    them); its image data is random, so nothing compresses it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2048, 2048, 8, 2, 0, 0, 0))
    tail = chunk(b"IEND", b"")
    return head + chunk(b"IDAT", os.urandom(max(size - len(head) - len(tail) - 12, 0))) + tail


def quick_body(image: bytes, escape_slashes: bool) -> bytes:
    text = json.dumps({"provider": "openai", "image": base64.b64encode(image).decode()})
    return (text.replace("/", "\\/") if escape_slashes else text).encode()


def main() -> int:
    served = {"body": b""}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            payload = served["body"]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    big = png(SIZE)
    ok = True
    _, idle = peak_rss([sys.executable, "-c", "pass"])
    print(f"image {SIZE / MIB:.1f} MiB; idle process (python -c pass) peak {idle / MIB:.1f} MiB")
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            ("tiny image, plain body", png(64), False),
            ("plain body", big, False),
            ("body with \\/ escapes", big, True),
        ]
        for name, image, escaped in cases:
            served["body"] = quick_body(image, escaped)
            out = f"{tmp}/out.png"
            code, peak = peak_rss(
                [*gpti2(), "generate", "big", "-o", out, "--base-url", url, "--force", "-q"]
            )
            with open(out, "rb") as written:
                same = written.read() == image
            ratio = (peak - idle) / SIZE
            line = (
                f"{name:24} body {len(served['body']) / MIB:5.1f} MiB, exit {code}, "
                f"bytes {'right' if same else 'WRONG'}, peak {peak / MIB:6.1f} MiB, "
                f"above idle {(peak - idle) / MIB:5.1f} MiB"
            )
            if image is big:
                within = ratio <= BUDGET and code == 0 and same
                ok = ok and within
                line += f" = {ratio:.2f}x the image (budget {BUDGET:g}x: "
                line += ("ok" if within else "OVER") + ")"
            print(line)
    server.shutdown()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
