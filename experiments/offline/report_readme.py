"""Splicing a report into a README: each report owns the section between its two marker comments, so
regenerating one report leaves the README's hand-written text and the other reports' sections alone."""

from __future__ import annotations

import os
from pathlib import Path

from rlkit2.checkpoint import atomic_write_bytes


def markers(stem: str) -> tuple[str, str]:
    """The comments that delimit report `stem`'s section of a README."""
    return f"<!-- {stem}:start -->", f"<!-- {stem}:end -->"


def splice(readme: Path, body: str, stem: str = "grid") -> None:
    """Put `body` between report `stem`'s markers in `readme` (a marked section is appended when they are
    missing)."""
    start, end = markers(stem)
    text = readme.read_text() if readme.is_file() else ""
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text and text.index(start) < text.index(end):
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + ("\n\n" if text else "") + f"### Evidence grid: {stem}\n\n" + block + "\n"
    atomic_write_bytes(readme, text.encode())


def readme_body(md: str, out_dir: Path, readme: Path) -> str:
    """The report without its title, headings two levels down (the README heads each report's section with a
    third-level heading of its own), image links relative to the README."""
    rel = os.path.relpath(out_dir, readme.parent)
    out = []
    for line in md.splitlines()[1:]:
        if line.startswith("#"):
            line = "##" + line
        if line.startswith("![") and "](" in line and rel != ".":
            alt, target = line[2:].split("](", 1)
            line = f"![{alt}]({rel}/{target}"
        out.append(line)
    return "\n".join(out).strip() + "\n"
