"""Behaviour policies shipped inside the package, so `rlkit2-data make hopper-v5-medium` collects its dataset in
minutes from small weight files instead of training SAC for hours.

Format (`rlkit2/data/policies/<env>/<role>.{safetensors,json}`; `RLKIT2_POLICIES_DIR` or a `policies_dir`
argument points elsewhere):

- `<role>`: `expert`, `medium`, or `snapshot-<env steps>` (the training run's snapshots that medium-replay is
  rolled out from, in training order);
- `<role>.safetensors`: the actor of an rlkit2 SAC agent (`rlkit2.networks.TanhGaussianPolicy`, state-dependent
  std), its `state_dict` as float32 tensors - no pickle, nothing executable;
- `<role>.json`, the card: `format`, `env` (hopper), `env_id` (Hopper-v5), `role`, `algorithm` ("sac"),
  `hidden` (MLP widths), `obs_dim`, `act_dim`, `env_steps` (env steps trained), `seed` (the training run's),
  `learning_starts` (the run's uniform-random warm-up, for medium-replay), `return_mean` / `return_std` /
  `eval_episodes` (greedy evaluation, 10 episodes by default), `versions` (torch, gymnasium, mujoco, rlkit2,
  safetensors), `sha256` (of the safetensors file), `file`.

`rlkit2.data.shipped_export.export_policy` writes both from an rlkit2 SAC snapshot or agent. This module finds
and loads them: `load_shipped_policy` checks the sha256, the card and the weights' shapes against the env,
rebuilds the actor and returns the greedy policy and a seeded stochastic explorer (SAC's own sampling, as the
behaviour policies acted when D4RL collected its data); `ScheduledActor` replays a SAC run's collection
schedule over its shipped snapshots (medium-replay).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlkit2.core import BaseActor, ConfigError, DataError
from rlkit2.data.names import D4RL_ENVS, env_family

POLICIES_ENV = "RLKIT2_POLICIES_DIR"
CARD_FORMAT = "rlkit2-behaviour-policy/1"
EVAL_EPISODES = 10
MAX_CARD_BYTES = 1 << 20
MAX_WEIGHTS_BYTES = 256 << 20
_ROLE_RE = re.compile(r"^(?:expert|medium|snapshot-(?P<step>\d+))$")
_CARD_KEYS = ("format", "env", "env_id", "role", "algorithm", "hidden", "obs_dim", "act_dim", "env_steps", "seed",
              "return_mean", "return_std", "eval_episodes", "versions", "sha256", "file")


def policies_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Where shipped policies are read from: `override`, else $RLKIT2_POLICIES_DIR, else the package's own."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(POLICIES_ENV):
        return Path(os.environ[POLICIES_ENV]).expanduser()
    return Path(__file__).resolve().with_name("policies")


def policy_family(env: str) -> str:
    """"hopper" or "Hopper-v5" -> "hopper"."""
    fam = env if env in D4RL_ENVS else env_family(env)
    if fam is None:
        raise ConfigError(f"env '{env}': shipped behaviour policies exist for {', '.join(D4RL_ENVS)} "
                          f"(or their Gymnasium ids {', '.join(D4RL_ENVS.values())})")
    return fam


def check_role(role: str) -> str:
    if not _ROLE_RE.match(role):
        raise ConfigError(f"policy role '{role}': expected expert, medium or snapshot-<env steps> (snapshot-50000)")
    return role


def snapshot_step(role: str) -> int | None:
    """`snapshot-50000` -> 50000; None for expert / medium."""
    m = _ROLE_RE.match(role)
    return int(m.group("step")) if m and m.group("step") is not None else None


def policy_paths(env: str, role: str, directory: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """(weights, card) paths of one shipped policy."""
    base = policies_dir(directory) / policy_family(env)
    check_role(role)
    return base / f"{role}.safetensors", base / f"{role}.json"


def shipped_roles(env: str, directory: str | os.PathLike[str] | None = None) -> list[str]:
    """Roles shipped for `env` (both files present): expert, medium, then snapshots in training order."""
    base = policies_dir(directory) / policy_family(env)
    if not base.is_dir():
        return []
    roles = [p.stem for p in base.glob("*.safetensors") if _ROLE_RE.match(p.stem) and p.with_suffix(".json").is_file()]
    fixed = [r for r in ("expert", "medium") if r in roles]
    snaps = sorted((r for r in roles if snapshot_step(r) is not None), key=lambda r: snapshot_step(r) or 0)
    return fixed + snaps


# --------------------------------------------------------------------------- the env's shapes


@dataclasses.dataclass(frozen=True)
class EnvSpaces:
    gym_id: str
    obs_dim: int
    act_dim: int
    action_low: float
    action_high: float


def env_spaces(gym_id: str) -> EnvSpaces:
    import gymnasium as gym

    env = gym.make(gym_id)
    try:
        obs, act = env.observation_space, env.action_space
        if obs.shape is None or act.shape is None or len(obs.shape) != 1 or len(act.shape) != 1:
            raise ConfigError(f"{gym_id}: shipped policies need flat Box spaces; got {obs} and {act}")
        return EnvSpaces(gym_id, int(obs.shape[0]), int(act.shape[0]), float(np.min(act.low)),  # type: ignore[attr-defined]
                       float(np.max(act.high)))  # type: ignore[attr-defined]
    finally:
        env.close()


def _make_actor(spaces: EnvSpaces, hidden: Sequence[int]) -> Any:
    from rlkit2.networks import TanhGaussianPolicy

    return TanhGaussianPolicy(spaces.obs_dim, spaces.act_dim, list(hidden), spaces.action_high)


def check_fits(tensors: dict[str, Any], spaces: EnvSpaces, hidden: Sequence[int], source: Path) -> Any:
    """The SAC actor for `spaces` with `hidden` widths, loaded with `tensors`; DataError naming `source` and the
    shapes when they do not fit."""
    import torch

    actor = _make_actor(spaces, hidden)
    want = {k: tuple(v.shape) for k, v in actor.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    what = (f"{spaces.gym_id} (observation {spaces.obs_dim}, action {spaces.act_dim}) with hidden "
            f"{list(hidden)}")
    if set(want) != set(got):
        raise DataError(f"{source}: tensors {sorted(got)} are not a SAC actor for {what}: missing "
                        f"{sorted(set(want) - set(got))}, unexpected {sorted(set(got) - set(want))}")
    bad = [f"{k} has shape {got[k]}, expected {want[k]}" for k in want if got[k] != want[k]]
    if bad:
        raise DataError(f"{source}: the weights do not fit {what}: {'; '.join(bad)}")
    for k, v in tensors.items():
        if not v.is_floating_point() or not bool(torch.isfinite(v).all()):
            raise DataError(f"{source}: tensor '{k}' is not finite floating point ({v.dtype})")
    actor.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()})
    actor.eval()
    return actor


# --------------------------------------------------------------------------- loading


@dataclasses.dataclass
class ShippedPolicy:
    """A loaded behaviour policy: `policy` greedy (tanh of the mean), `explorer` SAC's stochastic sampling."""

    policy: BaseActor
    explorer: BaseActor
    card: dict[str, Any]
    path: Path
    actor: Any  # the TanhGaussianPolicy
    spaces: EnvSpaces

    def make_explorer(self, seed: int) -> BaseActor:
        """A stochastic actor sampling with its own torch generator seeded by `seed` (same seed, same actions)."""
        import torch

        from rlkit2.actors import TorchPolicyActor

        gen = torch.Generator().manual_seed(int(seed) % (1 << 63))
        actor = self.actor
        return TorchPolicyActor(lambda obs: actor(obs, generator=gen)[0], action_low=self.spaces.action_low,
                                action_high=self.spaces.action_high)


def _read_capped(path: Path, cap: int, what: str) -> bytes:
    if not path.is_file():
        raise DataError(f"{path}: no such {what}")
    size = path.stat().st_size
    if size > cap:
        raise DataError(f"{path}: {what} of {size} bytes is larger than the {cap}-byte limit")
    return path.read_bytes()


def read_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A policy card, checked for its keys and types; DataError naming the file otherwise."""
    path = Path(path)
    try:
        card = json.loads(_read_capped(path, MAX_CARD_BYTES, "policy card").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a JSON policy card: {e}") from e
    if not isinstance(card, dict):
        raise DataError(f"{path}: a policy card is a JSON object, got {type(card).__name__}")
    missing = [k for k in _CARD_KEYS if k not in card]
    if missing:
        raise DataError(f"{path}: policy card is missing {', '.join(missing)}")
    if card["format"] != CARD_FORMAT:
        raise DataError(f"{path}: card format '{card['format']}', expected '{CARD_FORMAT}'")
    if card["algorithm"] != "sac":
        raise DataError(f"{path}: algorithm '{card['algorithm']}': only SAC actors are shipped")
    hidden = card["hidden"]
    if not isinstance(hidden, list) or not hidden or not all(isinstance(h, int) and 0 < h <= 65536 for h in hidden):
        raise DataError(f"{path}: hidden={hidden!r}: expected a list of positive layer widths")
    if not (isinstance(card["sha256"], str) and re.fullmatch(r"[0-9a-f]{64}", card["sha256"])):
        raise DataError(f"{path}: sha256={card['sha256']!r}: expected 64 hex digits")
    for key in ("env_steps", "seed", "obs_dim", "act_dim", "eval_episodes"):
        if not isinstance(card[key], int) or card[key] < 0:
            raise DataError(f"{path}: {key}={card[key]!r}: expected a non-negative integer")
    for key in ("return_mean", "return_std"):
        if not isinstance(card[key], int | float) or not np.isfinite(card[key]):
            raise DataError(f"{path}: {key}={card[key]!r}: expected a finite number")
    return card


def load_shipped_policy(env: str, role: str, *, policies_dir: str | os.PathLike[str] | None = None,
                        seed: int = 0) -> ShippedPolicy:
    """Load shipped policy `role` of `env` ("hopper" or "Hopper-v5").

    Checks, each failure a DataError naming the file: the card (keys, env, role, algorithm); the sha256 of the
    safetensors file against the card's; the tensors against the SAC actor the card's hidden widths build for
    the env's observation and action sizes. Returns the greedy `policy` and an `explorer` seeded by `seed`.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

    from rlkit2.actors import TorchPolicyActor

    fam = policy_family(env)
    weights, card_path = policy_paths(fam, role, policies_dir)
    if not weights.is_file() or not card_path.is_file():
        have = shipped_roles(fam, policies_dir)
        raise DataError(f"no shipped policy '{role}' for {fam}: {weights} / {card_path.name} missing "
                        f"(shipped for {fam}: {', '.join(have) or 'none'})")
    card = read_card(card_path)
    spaces = env_spaces(D4RL_ENVS[fam])
    if card["env_id"] != spaces.gym_id or card["env"] != fam:
        raise DataError(f"{card_path}: the card is for {card['env_id']} ({card['env']}), but it is shipped as "
                        f"{fam}'s policy ({spaces.gym_id})")
    if card["role"] != role:
        raise DataError(f"{card_path}: the card is for role '{card['role']}', but the file is '{role}'")
    blob = _read_capped(weights, MAX_WEIGHTS_BYTES, "policy weights file")
    digest = hashlib.sha256(blob).hexdigest()
    if digest != card["sha256"]:
        raise DataError(f"{weights}: sha256 {digest} does not match its card's {card['sha256']} "
                        f"({card_path.name}): the weights file is corrupt or was replaced")
    try:
        tensors = load_safetensors(blob)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise DataError(f"{weights}: not a readable safetensors file: {e}") from e
    if (card["obs_dim"], card["act_dim"]) != (spaces.obs_dim, spaces.act_dim):
        raise DataError(f"{card_path}: the card's observation/action sizes ({card['obs_dim']}, {card['act_dim']}) "
                        f"are not {spaces.gym_id}'s ({spaces.obs_dim}, {spaces.act_dim})")
    actor = check_fits(tensors, spaces, card["hidden"], weights)
    policy = TorchPolicyActor(actor.mode, action_low=spaces.action_low, action_high=spaces.action_high)
    loaded = ShippedPolicy(policy, policy, card, weights, actor, spaces)
    loaded.explorer = loaded.make_explorer(seed)
    return loaded


# --------------------------------------------------------------------------- medium-replay schedule


def replay_schedule_index(row: int, snapshot_steps: Sequence[int], learning_starts: int) -> int:
    """Which actor collected replay row `row` of a SAC run: -1 (uniform random warm-up) before
    `learning_starts`, else the latest snapshot taken at or before that env step (the earliest snapshot before
    the first one was taken)."""
    if row < learning_starts:
        return -1
    i = int(np.searchsorted(np.asarray(snapshot_steps), row, side="right")) - 1
    return max(i, 0)


class ScheduledActor(BaseActor):
    """Acts as a SAC run's collector did: uniform random during the warm-up, then each snapshot's stochastic
    explorer for the env steps between it and the next. `start_at_row(n)` sets the global row of the next act
    (`collect` calls it at every chunk, so a resumed collection follows the same schedule)."""

    def __init__(self, explorers: Sequence[BaseActor], snapshot_steps: Sequence[int], learning_starts: int,
                 random_action: Callable[[], np.ndarray]):
        self.explorers, self.steps = list(explorers), list(snapshot_steps)
        self.learning_starts, self.random_action = learning_starts, random_action
        self.row = 0

    def start_at_row(self, row: int) -> None:
        self.row = int(row)

    def act(self, observation: Any) -> Any:
        i = replay_schedule_index(self.row, self.steps, self.learning_starts)
        self.row += 1
        return self.random_action() if i < 0 else self.explorers[i].act(observation)
