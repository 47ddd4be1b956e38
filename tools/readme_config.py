"""The README's generated tables: configuration, from the key declarations (planning/config.py, planning/models.py),
and the network reachability matrix (planning/flows.py).

    python -m tools.readme_config           # exit 1 and say so if README.md is out of date
    python -m tools.readme_config --write   # rewrite the tables in README.md

Each table sits between a `<!-- generated: NAME ... -->` line and `<!-- end: NAME -->`; everything else in the
README is left as it is. tests/test_config.py fails while README.md differs from what this writes.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from planning.config import readme_config_table
from planning.flows import readme_reachability_table
from planning.models import readme_fields_table

README = Path(__file__).resolve().parent.parent / "README.md"
TABLES = {"config-keys": readme_config_table, "model-fields": readme_fields_table,
          "reachability": readme_reachability_table}


def updated(text: str) -> str:
    """`text` (the README) with every generated table as the declarations give it today."""
    for name, table in TABLES.items():
        pattern = re.compile(rf"(<!-- generated: {name} [^\n]*-->\n).*?(\n<!-- end: {name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README.md lacks the markers of the generated table {name!r}")
        text = pattern.sub(lambda m: m.group(1) + table() + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.readme_config", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the tables in README.md")
    args = parser.parse_args(argv)
    text = README.read_text()
    new = updated(text)
    if new == text:
        print("README.md configuration tables are up to date")
        return 0
    if args.write:
        README.write_text(new)
        print("README.md configuration tables rewritten")
        return 0
    print("README.md configuration tables are out of date: run python -m tools.readme_config --write",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
