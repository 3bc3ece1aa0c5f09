"""Regenerate the docs that come from the schema: the README reference table (between markers).

`make docs` runs it; a test fails when the README has drifted from the schema.
"""

from __future__ import annotations

import re
from pathlib import Path

from mlci.config.docs import reference_table

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- BEGIN CONFIG REFERENCE (generated: make docs) -->", "<!-- END CONFIG REFERENCE -->"


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    block = f"{BEGIN}\n{reference_table()}{END}"
    new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    if new != text:
        readme.write_text(new)
        print("README.md reference updated")


if __name__ == "__main__":
    main()
