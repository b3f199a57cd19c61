"""Progress reporting: a tqdm bar on a terminal; elsewhere (joblib workers, SLURM, a pipe) one plain line every
`every_s` seconds, so a multirun's log holds a readable line per job instead of interleaved bars."""

from __future__ import annotations

import sys
import time
from typing import Any

from rlkit2.logging import say


class PlainProgress:
    """tqdm's update / set_postfix / close, as a periodic line: `[rlkit2] desc 1200/5000 (24%) 130/s eta 29s`."""

    def __init__(self, total: int, initial: int = 0, desc: str = "", every_s: float = 30.0):
        self.total, self.n, self.desc, self.every_s = int(total), int(initial), desc, every_s
        self.start_n, self.t0 = self.n, time.perf_counter()
        self.last = self.t0
        self.postfix: dict[str, Any] = {}

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last >= self.every_s:
            self.last = now
            self._line(now)

    def set_postfix(self, postfix: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.postfix = {**(postfix or {}), **kwargs}

    def _line(self, now: float) -> None:
        rate = (self.n - self.start_n) / max(now - self.t0, 1e-9)
        eta = (self.total - self.n) / rate if rate > 0 else float("nan")
        extra = "".join(f"  {k}={v}" for k, v in self.postfix.items())
        pct = 100.0 * self.n / max(self.total, 1)
        say(f"[rlkit2] {self.desc} {self.n}/{self.total} ({pct:.0f}%) {rate:.1f}/s eta {eta:.0f}s{extra}")

    def close(self) -> None:
        if self.n != self.start_n:
            self._line(time.perf_counter())


class _Off:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, postfix: dict[str, Any] | None = None, **kwargs: Any) -> None: ...
    def close(self) -> None: ...


def progress(total: int, initial: int = 0, desc: str = "", enabled: bool = True, every_s: float = 30.0) -> Any:
    """A progress reporter: tqdm on a TTY, `PlainProgress` otherwise, nothing when disabled."""
    if not enabled:
        return _Off()
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, mininterval=2.0)
    return PlainProgress(total, initial, desc, every_s)
