"""Start-up time: `gpti2 --version` and `--help` against `python3 -c pass` (medians).

Budgets (issue 2): --version within 3x, --help within 8x. Run: python benchmarks/startup.py
"""

from __future__ import annotations

import sys

from _common import gpti2, median_seconds

RUNS = 31


def main() -> int:
    base = median_seconds([sys.executable, "-c", "pass"], RUNS)
    rows = [("python3 -c pass", base, 1.0, None)]
    for args, budget in ((["--version"], 3.0), (["--help"], 8.0), (["generate", "--help"], None)):
        t = median_seconds([*gpti2(), *args], RUNS)
        rows.append((f"gpti2 {' '.join(args)}", t, t / base, budget))
    ok = True
    for name, t, ratio, budget in rows:
        verdict = ""
        if budget is not None:
            verdict = f"budget {budget:.0f}x: " + ("ok" if ratio <= budget else "OVER")
            ok = ok and ratio <= budget
        print(f"{name:28} {t * 1000:7.1f} ms  {ratio:5.2f}x  {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
