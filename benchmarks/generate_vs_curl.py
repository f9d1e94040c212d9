"""`gpti2 generate` of a 1024x1024 image next to the curl | jq | base64 pipeline a user
would write instead, against the same emulator in the same run (medians).

Run: python benchmarks/generate_vs_curl.py   (needs curl and jq)
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from _common import Serve, gpti2, median_seconds

RUNS = 15


def main() -> int:
    if not (shutil.which("curl") and shutil.which("jq")):
        print("curl and jq are needed for the comparison")
        return 1
    body = json.dumps(
        {"prompt": "bench", "provider": "openai", "modelId": "dall-e-3", "aspectRatio": "1:1"}
    )
    with Serve("--image-size", "1024") as emu, tempfile.TemporaryDirectory() as tmp:
        ours = median_seconds(
            [*gpti2(), "generate", "bench", "-o", f"{tmp}/a.png", "--force", "--base-url", emu.url],
            RUNS,
        )
        pipeline = (
            f"curl -s -X POST -H 'Content-Type: application/json' -d '{body}' "
            f"{emu.url}/api/generate-images | jq -r .image | base64 -d > {tmp}/b.png"
        )
        theirs = median_seconds(pipeline, RUNS)
        same = Path(tmp, "a.png").read_bytes() == Path(tmp, "b.png").read_bytes()
    print(f"gpti2 generate (1024x1024)   {ours * 1000:7.1f} ms")
    print(f"curl | jq | base64 -d       {theirs * 1000:7.1f} ms")
    print(f"ratio                       {ours / theirs:7.2f}x   identical bytes: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
