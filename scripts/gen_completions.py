"""Write the shell completion scripts in completions/ from the app's own command tree.

Run `python scripts/gen_completions.py` after changing a command or an option;
tests/test_completions.py fails while the files are stale. The renderers live in
src/gpti2/cli/completion.py, which `gpti2 completion SHELL` also uses.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gpti2.cli.completion import render_all

OUT = Path(__file__).resolve().parent.parent / "completions"


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, text in render_all().items():
        (OUT / name).write_text(text)
        print(f"wrote completions/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
