"""Bounded JSON Lines reading, the one implementation behind every JSONL reader in rlkit2
(preference pairs, prompt files, metrics.jsonl).

A file is read line by line in binary with a bounded `readline`, so an over-long line is refused
without ever being held in memory whole. The longest line (or JSON file) read is
`RLKIT2_MAX_JSON_BYTES` (default 16 MiB; e.g. `RLKIT2_MAX_JSON_BYTES=256M`). Every problem, an
over-long line, invalid UTF-8, invalid JSON or nesting too deep for Python's parser, raises
`DataError("<path>:<line>: ...")`. Blank lines are skipped.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from typing import Any

from rlkit2.core import DataError
from rlkit2.data.limits import byte_limit, format_bytes

MAX_JSON_BYTES_ENV = "RLKIT2_MAX_JSON_BYTES"
DEFAULT_MAX_JSON_BYTES = 16 * 2**20


def max_json_bytes() -> int:
    return byte_limit(MAX_JSON_BYTES_ENV, DEFAULT_MAX_JSON_BYTES)


def parse_json(raw: bytes, where: str) -> Any:
    """UTF-8 JSON text -> a Python value, or DataError prefixed with `where` (e.g. 'file.jsonl:3')."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    try:
        return json.loads(text)
    except RecursionError as e:
        raise DataError(f"{where}: JSON nested too deeply to parse") from e
    except ValueError as e:  # JSONDecodeError, or an integer too long to convert
        raise DataError(f"{where}: not valid JSON ({getattr(e, 'msg', e)})") from e


def iter_jsonl(path: str | os.PathLike[str], *, drop_torn_tail: bool = False) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line of `path`.

    `drop_torn_tail`: a last line without its newline that does not parse is the trace of a writer
    killed mid-line (metrics.jsonl); it is dropped with a warning instead of raising.
    """
    limit = max_json_bytes()
    with open(path, "rb") as f:
        lineno = 0
        while raw := f.readline(limit + 1):
            lineno += 1
            complete = raw.endswith(b"\n")
            if len(raw) > limit and not complete:
                raise DataError(f"{path}:{lineno}: line longer than {format_bytes(limit)}; if the file is trusted, "
                                f"raise the limit with {MAX_JSON_BYTES_ENV} (e.g. {MAX_JSON_BYTES_ENV}=256M)")
            if not raw.strip():
                continue
            try:
                yield lineno, parse_json(raw, f"{path}:{lineno}")
            except DataError:
                if complete or not drop_torn_tail:
                    raise
                warnings.warn(f"{path}:{lineno}: ignoring an incomplete last line", stacklevel=2)


def read_json(path: str | os.PathLike[str]) -> Any:
    """A whole JSON file, refused (DataError) beyond the same byte limit as one JSONL line."""
    limit = max_json_bytes()
    with open(path, "rb") as f:
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise DataError(f"{path}: larger than {format_bytes(limit)}; if the file is trusted, raise the limit with "
                        f"{MAX_JSON_BYTES_ENV} (e.g. {MAX_JSON_BYTES_ENV}=256M)")
    return parse_json(raw, str(path))
