"""Copy recorded results into the docs, so that every number lives in one place.

A doc holds a generated region for each result it shows::

    <!-- include: benchmarks/results/RUN/compare.md -->
    ...the file's text, copied here by this script...
    <!-- end include -->

``PATH#table`` copies only the file's first Markdown table (its first run of lines that start
with ``|``): a report's table without its headings and notes. The file named is what a tool
wrote when it measured (`edgegen compare --out`, `edgegen eval --out`, the scripts in this
folder); this script copies it between the markers and nothing else edits those lines.
Usage (from the repository root)::

    .venv/bin/python benchmarks/scripts/render_docs.py            # rewrite the regions
    .venv/bin/python benchmarks/scripts/render_docs.py --check    # exit 1 when one is stale

`tests/test_docs.py` runs ``--check``: a number edited by hand in a region, or a result file
changed without re-rendering, fails the suite.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/*.md")
REGION = re.compile(r"(?P<open><!-- include: (?P<path>[^ ]+) -->\n)(?P<body>.*?)"
                    r"(?P<close><!-- end include -->)", re.DOTALL)


def documents(root: Path = ROOT) -> list[Path]:
    return sorted({p for pattern in DOCS for p in root.glob(pattern)})


def render(text: str, root: Path = ROOT) -> str:
    """``text`` with every include region's body replaced by the named file's text."""
    def fill(m: re.Match[str]) -> str:
        path, _, part = m["path"].partition("#")
        source = (root / path).resolve()
        if root.resolve() not in source.parents or not source.is_file():
            raise SystemExit(f"include: {path} is not a file of this repository")
        body = source.read_text(encoding="utf-8")
        if part == "table":
            body = first_table(body, m["path"])
        elif part:
            raise SystemExit(f"include: {m['path']}: the only part is #table")
        return m["open"] + body.rstrip("\n") + "\n" + m["close"]

    return REGION.sub(fill, text)


def first_table(text: str, name: str) -> str:
    """The first run of lines of ``text`` that start with ``|``."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if start is None:
        raise SystemExit(f"include: {name}: the file has no Markdown table")
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a region is stale")
    args = parser.parse_args(argv)
    stale = []
    for doc in documents():
        text = doc.read_text(encoding="utf-8")
        new = render(text)
        if new != text:
            stale.append(doc.relative_to(ROOT))
            if not args.check:
                doc.write_text(new, encoding="utf-8")
    if args.check and stale:
        print("stale result regions (run benchmarks/scripts/render_docs.py): "
              + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    print(("rendered " if not args.check else "up to date: ") + (
        ", ".join(map(str, stale)) if stale and not args.check else f"{len(documents())} docs"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
