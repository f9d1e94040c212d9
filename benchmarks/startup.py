"""Start-up time: `gpti2 --version` and `--help` against `python3 -c pass`, interleaved
in one run (medians, ratios).

Budgets (issue 2): --version within 3x, --help within 8x. Run: python benchmarks/startup.py
"""

from __future__ import annotations

import sys

from _common import compile_bytecode, gpti2, interleaved, report

RUNS = 31


def main() -> int:
    compile_bytecode()
    times = interleaved(
        {
            "python3 -c pass": [sys.executable, "-c", "pass"],
            "gpti2 --version": [*gpti2(), "--version"],
            "gpti2 --help": [*gpti2(), "--help"],
            "gpti2 generate --help": [*gpti2(), "generate", "--help"],
        },
        RUNS,
    )
    ok = report(times, "python3 -c pass", {"gpti2 --version": 3.0, "gpti2 --help": 8.0})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
