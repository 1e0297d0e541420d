"""Regenerate README.md's configuration reference from pcls.config (the single source).

python scripts/config-reference.py          # rewrite the block in README.md
python scripts/config-reference.py --check  # exit 1 if README.md is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

from pcls.config import reference

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- config-reference:begin -->"
END = "<!-- config-reference:end -->"


def table() -> str:
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key, default, doc in reference():
        rows.append(f"| `{key}` | `{default}` | {doc.replace('|', '/')} |")
    return "\n".join(rows)


def render(text: str) -> str:
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


def main() -> int:
    text = README.read_text(encoding="utf-8")
    new = render(text)
    if "--check" in sys.argv:
        if new != text:
            print("README.md configuration reference is out of date; run this script")
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
