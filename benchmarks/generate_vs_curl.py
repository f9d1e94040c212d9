"""`gpti2 generate` of a 1024x1024 image next to the curl | jq | base64 pipeline a user
would write instead, interleaved against the same emulator in one run (medians, ratios).

Two comparisons: one image at a time, and a script's loop of 32 images through
`xargs -P 8`. Budget (issue 12): generate within 4x of the pipeline.
Run: python benchmarks/generate_vs_curl.py   (needs curl and jq)
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from _common import Serve, compile_bytecode, gpti2, interleaved, report

RUNS, LOOP_RUNS, LOOP_IMAGES, PARALLEL = 21, 5, 32, 8
BUDGET = 4.0


def main() -> int:
    compile_bytecode()
    if not (shutil.which("curl") and shutil.which("jq")):
        print("curl and jq are needed for the comparison")
        return 1
    body = json.dumps(
        {"prompt": "bench", "provider": "openai", "modelId": "dall-e-3", "aspectRatio": "1:1"}
    )
    exe = shlex.join(gpti2())
    with Serve("--image-size", "1024") as emu, tempfile.TemporaryDirectory() as tmp:
        curl = (
            f"curl -sf -X POST -H 'Content-Type: application/json' -d '{body}' "
            f"{emu.url}/api/generate-images | jq -r .image | base64 -d"
        )
        ours = f"{exe} generate bench --force --base-url {emu.url}"
        one = interleaved(
            {
                "curl | jq | base64 -d": f"set -o pipefail; {curl} > {tmp}/b.png",
                "gpti2 generate": f"{ours} -o {tmp}/a.png",
                # What recording the history costs (it is on by default).
                "  with GPTI2_NO_HISTORY=1": f"GPTI2_NO_HISTORY=1 {ours} -o {tmp}/n.png",
            },
            RUNS,
        )
        same = Path(tmp, "a.png").read_bytes() == Path(tmp, "b.png").read_bytes()
        print(f"one 1024x1024 image (identical bytes: {same})")
        ok = report(one, "curl | jq | base64 -d", {"gpti2 generate": BUDGET})

        fan_out = f"seq {LOOP_IMAGES} | xargs -P {PARALLEL} -I{{}}"
        loop = interleaved(
            {
                "curl pipeline": (
                    f"{fan_out} bash -o pipefail -c {shlex.quote(curl + f' > {tmp}/c{{}}.png')}"
                ),
                "gpti2 generate": f"{fan_out} {ours} -q -o {tmp}/g{{}}.png",
            },
            LOOP_RUNS,
        )
        print(f"\n{LOOP_IMAGES} images through xargs -P {PARALLEL}")
        ok = report(loop, "curl pipeline", {"gpti2 generate": BUDGET}) and ok
    return 0 if ok and same else 1


if __name__ == "__main__":
    sys.exit(main())
