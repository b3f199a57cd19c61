"""A library user's data for `rlkit2.make`: arrays (D4RL layout too) or a replay, checked against the EnvSpec.

Arrays in D4RL's layout (`timeouts`, no `next_observations`) get their next observations (and, for the Q-sarsa
agents, next actions) derived as the HDF5 loader does; widths and action bounds are checked against the env
spec with errors that name the array, its shape and the spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rlkit2.core import ConfigError, EnvSpec

_TRANSITION_KEYS = ("observations", "actions", "rewards", "next_observations", "terminals")


def needs_next_actions(cfg: Any) -> bool:
    """Whether agent config `cfg` learns SARSA targets r + gamma * Q(s', a'), which need the dataset's a'
    (the Q-sarsa family: `qsarsa`, `qsarsa_ac`, `qsarsa_ac2`)."""
    from rlkit2.agents.qsarsa.config import QsarsaACConfig

    return isinstance(cfg, QsarsaACConfig)


def _spec_text(spec: EnvSpec) -> str:
    return (f"EnvSpec(obs_dim={spec.obs_dim}, act_dim={spec.act_dim}, action_low={spec.action_low:g}, "
            f"action_high={spec.action_high:g})")


def _check_widths(name: str, arrays: Mapping[str, NDArray[Any]], spec: EnvSpec) -> None:
    """Every observation-like and action-like array is (N, width) with the spec's width."""
    from rlkit2.core import DataError

    widths = {"observations": spec.obs_dim, "next_observations": spec.obs_dim, "actions": spec.act_dim,
              "next_actions": spec.act_dim}
    for key, width in widths.items():
        if key not in arrays:
            continue
        shape = tuple(np.shape(arrays[key]))
        if len(shape) != 2 or shape[1] != width:
            what = "obs_dim" if "observations" in key else "act_dim"
            raise DataError(f"make('{name}'): '{key}' has shape {shape}, but the env spec expects (N, {width}) "
                            f"({what}={width}; {_spec_text(spec)}): the env and the data disagree")


def _next_actions_from_order(name: str, arrays: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
    """Transitions with `next_observations` but no `next_actions`: a row continues into the next one when it is
    not terminal and its s' is the next row's s; there a' = the next row's action (through the D4RL loader's
    `to_transitions`, elsewhere masked with next_action_valid = 0)."""
    from rlkit2.core import DataError
    from rlkit2.data.d4rl import to_transitions

    obs, nxt = arrays["observations"], arrays["next_observations"]
    term = np.asarray(arrays["terminals"], bool)
    continues = np.zeros(len(obs), bool)
    continues[:-1] = ~term[:-1] & np.all(np.isclose(nxt[:-1], obs[1:], rtol=1e-5, atol=1e-6), axis=1)
    if not continues.any():
        raise DataError(
            f"make('{name}'): Q-sarsa's SARSA target r + gamma * Q(s', a') needs the dataset's next actions a', and "
            "they cannot be derived from these arrays: no row's next_observations is the following row's "
            "observations (the rows are not in episode order). Pass 'next_actions' (the action taken at s'; "
            "'next_action_valid' = 0 where it is unknown), or the rows in episode order (D4RL's layout with "
            "'timeouts', or with next_observations)")
    rows = {**{k: arrays[k] for k in _TRANSITION_KEYS}, "timeouts": (~continues & ~term).astype(np.float32)}
    return to_transitions(rows)


def _arrays_to_transitions(name: str, cfg: Any, arrays: Mapping[str, Any], spec: EnvSpec) -> dict[str, NDArray[Any]]:
    """A dict of arrays -> checked transitions for `TransitionReplay.from_arrays`.

    Two layouts: transitions (`observations, actions, rewards, next_observations, terminals` [, `next_actions`,
    `next_action_valid`]), or D4RL's (`observations, actions, rewards, terminals, timeouts` in episode order
    [, `next_observations`]): those go through the D4RL loader's `to_transitions`, as files do, which derives s'
    (dropping each timeout row, whose successor is a reset) and a'. Widths are checked against `spec` and
    actions against its bounds (DataError naming the key, the shape or the count and bound)."""
    from rlkit2.core import DataError
    from rlkit2.data.d4rl import to_transitions

    a = {k: np.asarray(v) for k, v in arrays.items()}
    _check_widths(name, a, spec)
    source = f"make('{name}') arrays"
    if "timeouts" in a:  # D4RL's layout: what read_d4rl returns
        return to_transitions(_validate(a, source, spec))
    if "next_observations" not in a:
        missing = [k for k in _TRANSITION_KEYS if k not in a]
        raise DataError(f"{source}: missing {missing} (have {sorted(a)}). Pass transitions "
                        f"({', '.join(_TRANSITION_KEYS)}), or D4RL's layout (observations, actions, rewards, "
                        "terminals, timeouts, rows in episode order: next observations and next actions are "
                        "derived from the following row)")
    n = len(a["observations"])
    clean = _validate({**a, "timeouts": np.zeros(n, bool)}, source, spec)  # the checks; timeouts unused
    out: dict[str, NDArray[Any]] = {k: np.asarray(clean[k], np.float32) for k in _TRANSITION_KEYS}
    if "next_actions" in a:
        out["next_actions"] = np.asarray(a["next_actions"], np.float32)
        if "next_action_valid" in a:
            out["next_action_valid"] = np.asarray(a["next_action_valid"], np.float32).reshape(-1)
        for key in ("next_actions", "next_action_valid"):
            if key in out and len(out[key]) != n:
                raise DataError(f"{source}: '{key}' has {len(out[key])} rows, 'observations' has {n}")
    elif needs_next_actions(cfg):
        derived = _next_actions_from_order(name, out)
        out["next_actions"], out["next_action_valid"] = derived["next_actions"], derived["next_action_valid"]
    return out


def _validate(arrays: Mapping[str, NDArray[Any]], source: str, spec: EnvSpec) -> dict[str, NDArray[Any]]:
    """The D4RL loader's checks (keys, ranks, lengths, finiteness, 0/1 flags, action bounds of `spec`)."""
    from rlkit2.core import DataError
    from rlkit2.data.d4rl import validate_arrays

    try:
        return validate_arrays(arrays, source=source, action_low=spec.action_low, action_high=spec.action_high)
    except DataError as e:
        if "outside the action space" not in str(e):
            raise
        raise DataError(f"{e}. The env's actions are bounded by {_spec_text(spec)}: clip the data's actions "
                        "(np.clip), or give the spec the bounds the data was collected with") from None


def _check_action_bounds(name: str, actions: NDArray[Any], spec: EnvSpec) -> None:
    n = len(actions)
    if n:
        zeros = np.zeros(n, np.float32)
        _validate({"observations": np.zeros((n, 1), np.float32), "actions": actions, "rewards": zeros,
                   "terminals": zeros, "timeouts": zeros}, f"make('{name}') replay", spec)


def as_replay(replay: Any, seed: int, name: str = "", cfg: Any = None, spec: EnvSpec | None = None) -> Any:
    """A mapping of NumPy arrays becomes the library's TransitionReplay (see `_arrays_to_transitions` for the
    layouts it takes); anything else is used as given."""
    if isinstance(replay, Mapping):
        from rlkit2.replay import TransitionReplay

        if spec is None:  # no spec to check against: the arrays as they are
            return TransitionReplay.from_arrays({k: np.asarray(v) for k, v in replay.items()}, seed=seed)
        return TransitionReplay.from_arrays(_arrays_to_transitions(name, cfg, replay, spec), seed=seed)
    return replay


def check_replay(name: str, cfg: Any, replay: Any, spec: EnvSpec | None = None) -> None:
    from rlkit2.core import DataError
    from rlkit2.replay import TransitionReplay

    if replay is None or not callable(getattr(replay, "sample", None)):
        raise ConfigError(f"agent '{name}' learns from a replay: pass an object with sample(batch_size) -> Batch "
                          "(e.g. rlkit2.TransitionReplay) or a dict of NumPy arrays")
    if getattr(cfg, "normalize_obs", False) and not callable(getattr(replay, "arrays", None)):
        raise ConfigError(f"agent '{name}' normalises observations with the dataset's mean/std, but the replay "
                          f"({type(replay).__name__}) has no arrays() method returning {{'observations': ...}}; "
                          "add one, or pass normalize_obs=False")
    if spec is not None:
        for attr, want in (("obs_dim", spec.obs_dim), ("act_dim", spec.act_dim)):
            have = getattr(replay, attr, None)
            if isinstance(have, int) and have != want:
                raise DataError(f"make('{name}'): the replay's {attr} is {have}, but the env spec says {want} "
                                f"({_spec_text(spec)}): the env and the data disagree")
        if isinstance(replay, TransitionReplay):
            _check_action_bounds(name, replay.arrays()["actions"], spec)
    if needs_next_actions(cfg) and not getattr(replay, "with_next_actions", False):
        raise DataError(f"agent '{name}' learns Q-sarsa's SARSA target r + gamma * Q(s', a'), which needs the "
                        f"dataset's next actions a', but the replay ({type(replay).__name__}) has none: pass a dict "
                        "of arrays (a' is derived from rows in episode order, or give 'next_actions'), or a replay "
                        "with `with_next_actions = True` whose batches carry `next_actions`")
