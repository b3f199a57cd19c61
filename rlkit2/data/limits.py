"""Byte limits for reading data files: each has a default, and an environment variable that replaces it.

A value is a byte count, optionally with a binary suffix: `34359738368`, `32G`, `32GiB`, `512M`.
"""

from __future__ import annotations

import os
import re

from rlkit2.core import ConfigError

_VALUE_RE = re.compile(r"^(\d+)\s*([kmgt]?)(?:i?b)?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def byte_limit(env_var: str, default: int) -> int:
    """`$env_var` as a positive number of bytes when set, else `default`."""
    raw = os.environ.get(env_var, "").strip()
    if not raw:
        return default
    m = _VALUE_RE.match(raw)
    value = int(m.group(1)) * _UNITS[m.group(2).lower()] if m else 0
    if value <= 0:
        raise ConfigError(f"{env_var}={raw!r}: expected a positive number of bytes (e.g. 34359738368 or 32G)")
    return value


def format_bytes(n: int) -> str:
    """1610612736 -> '1.5 GiB' (for messages)."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    size, i = float(n), 0
    while size >= 1024 and i < len(units) - 1:
        size, i = size / 1024, i + 1
    return f"{n} B" if i == 0 else f"{size:.1f} {units[i]}"
