"""Peak memory of `gpti2 generate` receiving a 16 MiB image, above the process's idle
baseline (budget: under 4x the image size).

A child process imports gpti2, records its resident size, runs the generate command
in-process against a server (in this parent process) that answers with a 16 MiB image
as base64 JSON, then reads its peak resident size (VmHWM). Linux only.
Run: python benchmarks/decode_memory.py
"""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIZE = 16 * 1024 * 1024

CHILD = r"""
import sys
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
import gpti2.cli, gpti2.client, gpti2.quick, gpti2.images, httpx  # everything the run needs
idle = status("VmRSS:")
from gpti2.__main__ import main
try:
    main(["generate", "big", "-o", sys.argv[2], "--base-url", sys.argv[1], "--force", "-q"])
except SystemExit as exit:
    code = exit.code
print("MEM", idle, status("VmHWM:"), code)
"""


def big_png() -> bytes:
    header = struct.pack(">IIBBBBB", 2048, 2048, 8, 2, 0, 0, 0)
    ihdr = (
        struct.pack(">I", 13) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    )
    body = b"\x89PNG\r\n\x1a\n" + ihdr
    return body + os.urandom(SIZE - len(body))


def main() -> int:
    payload = json.dumps({"provider": "openai", "image": base64.b64encode(big_png()).decode()})
    payload = payload.encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, url, f"{tmp}/big.png"],
            capture_output=True,
            text=True,
            check=True,
        )
        written = os.path.getsize(f"{tmp}/big.png")
    server.shutdown()
    idle, peak, code = (int(x) for x in out.stdout.split("MEM")[-1].split())
    growth = peak - idle
    mib = 1024 * 1024
    print(f"image {SIZE / mib:.1f} MiB (base64 body {len(payload) / mib:.1f} MiB), exit {code}")
    print(f"written {written / mib:.1f} MiB")
    print(
        f"idle RSS {idle / mib:.1f} MiB, peak {peak / mib:.1f} MiB, growth {growth / mib:.1f} MiB"
    )
    print(f"growth / image size = {growth / SIZE:.2f}x (budget 4x)")
    return 0 if growth < 4 * SIZE and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
