"""Range checks of configuration values: one mechanism for every typed config.

A bad value is refused with a `ConfigError` that names the setting and the value (`agent.critic_lr=nan:
learning rates must be positive and finite`) where the config is made, before anything is built:

- each typed config dataclass (the agents' `*Config`, `TrainerConfig`) derives from `ValidatedConfig` and
  declares its ranges in `check(f)`; its `__post_init__` runs them, so `rlkit2.make(...)`,
  `rlkit2.agent_config(...)` and the runners' `to_config` refuse a bad value on construction;
- `check` reads fields through `Fields`, which also reads plain mappings and OmegaConf nodes, so
  `rlkit2.run.common.validate_run(cfg)` checks a composed Hydra config (`rlkit2-train`) as it is: the seed,
  `trainer.*`, `env.*` and `agent.*` (nested configs are named by their path, e.g. `agent.prior.lr`);
- settings that depend on the environment (the bytes of an online batch and replay) are checked by
  `check_online_memory` as soon as the observation and action sizes are known, before the replay is allocated.

Settings that are legal but costly only warn (`trainer.threads` above the number of CPUs).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from rlkit2.core import ConfigError

__all__ = ["ConfigWarning", "Fields", "ValidatedConfig", "check_online_memory", "in_range", "learning_rate",
           "logical_cpus", "non_negative", "positive_finite", "probability", "validate_agent", "validate_env",
           "warn_threads"]


class ConfigWarning(UserWarning):
    """A configuration value that works but is probably not what was meant (e.g. oversubscribed threads)."""


# --------------------------------------------------------------------------- shared helpers


def show(value: Any) -> str:
    """A value as the error message prints it: `0.0003`, `'stop'`, `[64, 0]` (NumPy scalars as plain numbers)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return repr(value)


def fail(name: str, value: Any, problem: str) -> ConfigError:
    return ConfigError(f"{name}={show(value)}: {problem}")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _suffix(what: str) -> str:
    return f" ({what})" if what else ""


def number(name: str, value: Any, *, optional: bool = False) -> None:
    """A finite real number (None allowed when `optional`)."""
    if optional and value is None:
        return
    if not _is_number(value):
        raise fail(name, value, "expected a number")
    if not math.isfinite(float(value)):
        raise fail(name, value, "must be finite")


def positive_finite(name: str, value: Any, what: str = "") -> None:
    if not _is_number(value) or not math.isfinite(float(value)) or value <= 0:
        raise fail(name, value, "must be positive and finite" + _suffix(what))


def learning_rate(name: str, value: Any) -> None:
    if not _is_number(value) or not math.isfinite(float(value)) or value <= 0:
        raise fail(name, value, "learning rates must be positive and finite")


def non_negative(name: str, value: Any, what: str = "") -> None:
    if not _is_number(value) or not math.isfinite(float(value)) or value < 0:
        raise fail(name, value, "must be >= 0 and finite" + _suffix(what))


def in_range(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False,
             label: str = "must") -> None:
    """`lo <= value <= hi` (strict at an open end), finite; the message reads `<label> lie in [lo, hi]`."""
    ok = _is_number(value) and math.isfinite(float(value))
    if ok:
        ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{show(lo)}, {show(hi)}{')' if hi_open else ']'}"
        raise fail(name, value, f"{label} lie in {interval}")


def probability(name: str, value: Any, label: str = "a probability or fraction must") -> None:
    in_range(name, value, 0, 1, label=label)


def count(name: str, value: Any, what: str = "", minimum: int = 1) -> None:
    """An integer >= `minimum` (1: batch sizes, numbers of steps, episodes, ...)."""
    if not is_int(value):
        raise fail(name, value, "expected an integer" + _suffix(what))
    if value < minimum:
        problem = "must be positive" if minimum == 1 else "must be >= 0" if minimum == 0 else f"must be >= {minimum}"
        raise fail(name, value, problem + _suffix(what))


def choice(name: str, value: Any, options: Sequence[str]) -> None:
    if value not in options:
        quoted = [repr(o) for o in options]
        expected = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
        raise fail(name, value, f"expected {expected}")


def _items(value: Any) -> list[Any] | None:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        return None
    return list(value)


# --------------------------------------------------------------------------- fields of one config


class Fields:
    """The fields of one config (a dataclass, a mapping or an OmegaConf node) under a dotted prefix.

    Each check takes field names and raises `ConfigError` naming `<prefix>.<field>=<value>`; a field the
    config does not have is skipped (an older or partial config), so one `check` serves every form.
    """

    def __init__(self, config: Any, prefix: str = "agent"):
        self.config, self.prefix = config, prefix

    def name(self, field: str) -> str:
        return f"{self.prefix}.{field}" if self.prefix else field

    def has(self, field: str) -> bool:
        if isinstance(self.config, Mapping):  # also an OmegaConf DictConfig
            return field in self.config
        return hasattr(self.config, field)

    def get(self, field: str) -> Any:
        return self.config[field] if isinstance(self.config, Mapping) else getattr(self.config, field)

    def names(self) -> list[str]:
        if dataclasses.is_dataclass(self.config):
            return [f.name for f in dataclasses.fields(self.config)]
        return [str(k) for k in self.config] if isinstance(self.config, Mapping | Iterable) else []

    def sub(self, field: str) -> Fields:
        """The nested config `field`, named `<prefix>.<field>.*` (empty when absent)."""
        return Fields(self.get(field) if self.has(field) else {}, self.name(field))

    def _each(self, fields: tuple[str, ...]) -> Iterable[tuple[str, Any]]:
        for field in fields:
            if self.has(field):
                yield self.name(field), self.get(field)

    # ---------------------------------------------------------------- checks
    def lr(self, *fields: str) -> None:
        """Learning rates: finite and > 0."""
        for name, v in self._each(fields):
            learning_rate(name, v)

    def positive(self, *fields: str, what: str = "") -> None:
        for name, v in self._each(fields):
            positive_finite(name, v, what)

    def non_negative(self, *fields: str, what: str = "") -> None:
        for name, v in self._each(fields):
            non_negative(name, v, what)

    def finite(self, *fields: str, optional: bool = False) -> None:
        for name, v in self._each(fields):
            number(name, v, optional=optional)

    def probability(self, *fields: str, label: str = "a probability or fraction must") -> None:
        for name, v in self._each(fields):
            probability(name, v, label)

    def in_range(self, field: str, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False,
                 label: str = "must") -> None:
        for name, v in self._each((field,)):
            in_range(name, v, lo, hi, lo_open=lo_open, hi_open=hi_open, label=label)

    def discount(self, *fields: str) -> None:
        for name, v in self._each(fields or ("gamma",)):
            in_range(name, v, 0, 1, label="a discount must")

    def target_rate(self, *fields: str) -> None:
        """Polyak rates (`tau`): 0 would freeze the target networks."""
        for name, v in self._each(fields or ("tau",)):
            in_range(name, v, 0, 1, lo_open=True, label="the target-update rate must")

    def count(self, *fields: str, what: str = "", minimum: int = 1) -> None:
        """Integers >= `minimum` (default 1: batch sizes, model sizes, numbers of episodes)."""
        for name, v in self._each(fields):
            count(name, v, what, minimum)

    def steps(self, *fields: str) -> None:
        """Positive numbers of steps (update periods, horizons)."""
        for name, v in self._each(fields):
            if not is_int(v) or v <= 0:
                raise fail(name, v, "must be a positive number of steps")

    def budget(self, *fields: str) -> None:
        """Non-negative integer budgets (warm-up steps, optional phases where 0 switches them off)."""
        self.count(*fields, minimum=0)

    def widths(self, *fields: str) -> None:
        """Hidden-layer widths: a list of positive integers."""
        for name, v in self._each(fields):
            items = _items(v)
            if items is None or any(not is_int(h) or h <= 0 for h in items):
                raise fail(name, v, "layer widths must be positive integers")

    def indices(self, *fields: str) -> None:
        """Lists of dimension indices (>= 0; the upper bound is checked when the env is known)."""
        for name, v in self._each(fields):
            items = _items(v)
            if items is None or any(not is_int(i) or i < 0 for i in items):
                raise fail(name, v, "expected a list of dimension indices >= 0")

    def weights(self, *fields: str) -> None:
        """Lists of non-negative finite weights."""
        for name, v in self._each(fields):
            items = _items(v)
            if items is None or any(not _is_number(w) or not math.isfinite(float(w)) or w < 0 for w in items):
                raise fail(name, v, "weights must be finite and >= 0")

    def threads(self, *fields: str) -> None:
        """'auto' or a positive number of threads."""
        for name, v in self._each(fields):
            if str(v) != "auto" and not (str(v).isdigit() and int(str(v)) > 0):
                raise fail(name, v, "expected 'auto' or a positive number of threads")

    def choice(self, field: str, options: Sequence[str]) -> None:
        for name, v in self._each((field,)):
            choice(name, v, options)

    def batch_within(self, batch: str, capacity: str) -> None:
        """A batch sampled from a replay of `capacity` transitions is not larger than it."""
        if self.has(batch) and self.has(capacity):
            b, c = self.get(batch), self.get(capacity)
            if is_int(b) and is_int(c) and b > c:
                raise ConfigError(f"{self.name(batch)}={show(b)} is larger than {self.name(capacity)}={show(c)}, the "
                                  "replay it samples from; lower the batch size")

    def conventions(self) -> None:
        """Checks by field name, for any agent config (also one whose class declares none): `*lr` learning
        rates, `gamma` a discount, `tau` a target rate, `*_freq` update periods, `hidden`/`*_hidden` layer
        widths, `batch_size` a positive count."""
        for field in self.names():
            if field.endswith("lr"):
                self.lr(field)
            elif field == "gamma":
                self.discount(field)
            elif field == "tau":
                self.target_rate(field)
            elif field.endswith("_freq"):
                self.steps(field)
            elif field == "hidden" or field.endswith("_hidden"):
                self.widths(field)
            elif field == "batch_size":
                self.count(field)


class ValidatedConfig:
    """Base of the typed configs: ranges declared once in `check`, run on construction (`__post_init__`).

    `config_prefix` is how errors name the config's fields (`agent.actor_lr`); a config nested in another
    one is checked by its parent as `Child.check(f.sub("child"))` and may set its own prefix
    (`agent.prior`) for when it is constructed on its own.
    """

    config_prefix: ClassVar[str] = "agent"

    def __post_init__(self) -> None:
        type(self).check(Fields(self, self.config_prefix))

    @classmethod
    def check(cls, f: Fields) -> None:
        """Raise `ConfigError` for a field out of its range (override; call super().check(f) in subclasses)."""


# --------------------------------------------------------------------------- whole configs


def validate_agent(config: Any, cls: type | None = None, prefix: str = "agent") -> None:
    """Range checks of an agent config: `cls.check` (its declared ranges) and the name conventions.

    `config` may be the dataclass, a mapping or an OmegaConf node; `cls` defaults to its type.
    """
    f = Fields(config, prefix)
    cls = cls or type(config)
    check = getattr(cls, "check", None)
    if callable(check):
        check(f)
    f.conventions()


def validate_env(env: Any, prefix: str = "env") -> None:
    """The env settings every kind shares by name: episode limits, vectorisation."""
    f = Fields(env, prefix)
    if f.has("max_episode_steps") and f.get("max_episode_steps") is not None:
        f.steps("max_episode_steps")
    f.steps("horizon")  # robosuite: max control steps of an episode
    f.count("num_envs")
    f.choice("vectorization", ("sync", "async"))


def logical_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def warn_threads(threads: Any, cpus: int | None = None) -> None:
    """`trainer.threads` above the logical CPUs works but oversubscribes them (often several times slower)."""
    cpus = cpus or logical_cpus()
    n = int(threads) if str(threads).isdigit() else None
    if n is not None and n > cpus:
        msg = (f"trainer.threads={n} is more than the {cpus} logical CPUs of this machine: torch will "
               f"oversubscribe them and run slower; use trainer.threads={cpus} or fewer, or 'auto'")
        warnings.warn(msg, ConfigWarning, stacklevel=2)


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def check_online_memory(agent_cfg: Any, obs_dim: int, act_dim: int, capacity: int,
                        available: int | None = None) -> None:
    """Refuse an online batch or replay whose float32 transitions (obs, action, reward, next obs, terminal:
    (2 obs_dim + act_dim + 2) x 4 bytes each) alone exceed the memory available now."""
    if available is None:
        import psutil

        available = int(psutil.virtual_memory().available)
    row = 4 * (2 * int(obs_dim) + int(act_dim) + 2)
    what = f"({row} bytes per transition: obs_dim={obs_dim}, act_dim={act_dim}, float32)"
    bs: Any = getattr(agent_cfg, "batch_size", None)
    if is_int(bs) and bs * row > available:
        raise ConfigError(f"agent.batch_size={bs}: one sampled batch needs {_gib(bs * row)} {what}, more than the "
                          f"{_gib(available)} of memory available; use a smaller batch")
    if capacity * row > available:
        raise ConfigError(f"agent.replay_capacity={show(getattr(agent_cfg, 'replay_capacity', capacity))}: the "
                          f"replay of {capacity} transitions needs {_gib(capacity * row)} {what}, more than the "
                          f"{_gib(available)} of memory available; lower agent.replay_capacity")
