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

`export_policy` writes both from an rlkit2 SAC snapshot or agent; `load_shipped_policy` checks the sha256, the
card and the weights' shapes against the env, rebuilds the actor and returns the greedy policy and a seeded
stochastic explorer (SAC's own sampling, as the behaviour policies acted when D4RL collected its data).
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
from rlkit2.data.d4rl import D4RL_ENVS, env_family

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


def _family(env: str) -> str:
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
    base = policies_dir(directory) / _family(env)
    check_role(role)
    return base / f"{role}.safetensors", base / f"{role}.json"


def shipped_roles(env: str, directory: str | os.PathLike[str] | None = None) -> list[str]:
    """Roles shipped for `env` (both files present): expert, medium, then snapshots in training order."""
    base = policies_dir(directory) / _family(env)
    if not base.is_dir():
        return []
    roles = [p.stem for p in base.glob("*.safetensors") if _ROLE_RE.match(p.stem) and p.with_suffix(".json").is_file()]
    fixed = [r for r in ("expert", "medium") if r in roles]
    snaps = sorted((r for r in roles if snapshot_step(r) is not None), key=lambda r: snapshot_step(r) or 0)
    return fixed + snaps


# --------------------------------------------------------------------------- the env's shapes


@dataclasses.dataclass(frozen=True)
class _Spaces:
    gym_id: str
    obs_dim: int
    act_dim: int
    action_low: float
    action_high: float


def _spaces(gym_id: str) -> _Spaces:
    import gymnasium as gym

    env = gym.make(gym_id)
    try:
        obs, act = env.observation_space, env.action_space
        if obs.shape is None or act.shape is None or len(obs.shape) != 1 or len(act.shape) != 1:
            raise ConfigError(f"{gym_id}: shipped policies need flat Box spaces; got {obs} and {act}")
        return _Spaces(gym_id, int(obs.shape[0]), int(act.shape[0]), float(np.min(act.low)),  # type: ignore[attr-defined]
                       float(np.max(act.high)))  # type: ignore[attr-defined]
    finally:
        env.close()


def _make_actor(spaces: _Spaces, hidden: Sequence[int]) -> Any:
    from rlkit2.networks import TanhGaussianPolicy

    return TanhGaussianPolicy(spaces.obs_dim, spaces.act_dim, list(hidden), spaces.action_high)


def _check_fits(tensors: dict[str, Any], spaces: _Spaces, hidden: Sequence[int], source: Path) -> Any:
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
    spaces: _Spaces

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

    fam = _family(env)
    weights, card_path = policy_paths(fam, role, policies_dir)
    if not weights.is_file() or not card_path.is_file():
        have = shipped_roles(fam, policies_dir)
        raise DataError(f"no shipped policy '{role}' for {fam}: {weights} / {card_path.name} missing "
                        f"(shipped for {fam}: {', '.join(have) or 'none'})")
    card = read_card(card_path)
    spaces = _spaces(D4RL_ENVS[fam])
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
    actor = _check_fits(tensors, spaces, card["hidden"], weights)
    policy = TorchPolicyActor(actor.mode, action_low=spaces.action_low, action_high=spaces.action_high)
    loaded = ShippedPolicy(policy, policy, card, weights, actor, spaces)
    loaded.explorer = loaded.make_explorer(seed)
    return loaded


# --------------------------------------------------------------------------- exporting


def _versions() -> dict[str, str]:
    import gymnasium as gym
    import mujoco
    import safetensors
    import torch

    import rlkit2

    return {"torch": torch.__version__, "gymnasium": gym.__version__, "mujoco": mujoco.__version__,
            "rlkit2": rlkit2.__version__, "safetensors": safetensors.__version__}


def _actor_of(source: Any) -> tuple[Any, list[int], int | None]:
    """(TanhGaussianPolicy, hidden widths, env steps or None) of a snapshot path, an Agent or a SAC learner."""
    from rlkit2.networks import TanhGaussianPolicy

    steps: int | None = None
    if isinstance(source, str | os.PathLike):
        from rlkit2 import checkpoint as ckpt

        state = ckpt.load(source)
        if state.get("agent") != "sac":
            raise DataError(f"{source}: a behaviour-policy snapshot of agent '{state.get('agent')}'; only SAC's "
                            "actor is exported")
        steps = int(state["step"]) if "step" in state else None
        hidden = [int(h) for h in state["agent_config"].get("hidden", [256, 256])]
        if "learner" in state:  # rlkit2.data.generate snapshots: the whole learner
            from rlkit2.data.generate import load_snapshot_agent

            actor = load_snapshot_agent(source).learner.actor
        elif "actor" in state:  # carried snapshots (actor weights only)
            from rlkit2.registry import EnvSpec

            spec = EnvSpec(**state["spec"])
            actor = TanhGaussianPolicy(spec.obs_dim, spec.act_dim, hidden, float(spec.action_high))
            actor.load_state_dict(state["actor"])
        else:
            raise DataError(f"{source}: a snapshot needs 'learner' or 'actor' weights; has {sorted(state)}")
        return actor, hidden, steps
    learner = getattr(source, "learner", source)
    actor = getattr(learner, "actor", None)
    config = getattr(learner, "config", None)
    if not isinstance(actor, TanhGaussianPolicy) or config is None or getattr(config, "name", "sac") != "sac":
        raise ConfigError(f"export_policy: expected a snapshot path, an rlkit2 SAC agent or SAC learner; got "
                          f"{type(source).__name__}")
    return actor, [int(h) for h in config.hidden], steps


def export_policy(source: Any, env: str, role: str, out_dir: str | os.PathLike[str], *, seed: int,
                  returns: tuple[float, float] | None = None, env_steps: int | None = None,
                  learning_starts: int | None = None, eval_episodes: int = EVAL_EPISODES,
                  eval_seed: int = 50_000, extra: dict[str, Any] | None = None) -> Path:
    """Write the actor of an rlkit2 SAC agent as `<out_dir>/<env>/<role>.safetensors` plus its card.

    `source`: a snapshot (`rlkit2.data.generate` policy snapshot path: a checkpoint with `agent`,
    `agent_config`, `spec`, `learner` - or a carried one with `actor`), an `rlkit2.registry.Agent` of agent
    "sac" (e.g. `rlkit2.make("sac", env)`), or a `SACLearner`. `seed`: the training run's seed.
    `env_steps`: env steps trained (default: the snapshot's step; required for an agent). `returns`: (mean,
    std) of the greedy policy over `eval_episodes` episodes; measured here when not given.
    `learning_starts`: the run's random warm-up steps (medium-replay replays it). Returns the weights path.
    """
    import torch
    from safetensors.torch import save as save_safetensors

    from rlkit2 import checkpoint as ckpt

    fam = _family(env)
    check_role(role)
    actor, hidden, steps = _actor_of(source)
    steps = env_steps if env_steps is not None else steps
    if steps is None:
        raise ConfigError("export_policy: pass env_steps (the env steps this policy was trained for)")
    if snapshot_step(role) is not None and snapshot_step(role) != steps:
        raise ConfigError(f"export_policy: role '{role}' but env_steps={steps}")
    spaces = _spaces(D4RL_ENVS[fam])
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in actor.state_dict().items()}
    fitted = _check_fits(tensors, spaces, hidden, Path(f"<{type(source).__name__} for {role}>"))
    if returns is None:
        returns = _greedy_returns(fitted, spaces, eval_episodes, eval_seed)
    mean, std = (float(r) for r in returns)
    blob = save_safetensors(tensors, metadata={"format": CARD_FORMAT, "env_id": spaces.gym_id, "role": role})
    weights, card_path = policy_paths(fam, role, out_dir)
    card: dict[str, Any] = {
        "format": CARD_FORMAT, "env": fam, "env_id": spaces.gym_id, "role": role, "algorithm": "sac",
        "hidden": hidden, "obs_dim": spaces.obs_dim, "act_dim": spaces.act_dim, "env_steps": int(steps),
        "seed": int(seed), "learning_starts": None if learning_starts is None else int(learning_starts),
        "return_mean": mean, "return_std": std, "eval_episodes": int(eval_episodes),
        "versions": _versions(), "sha256": hashlib.sha256(blob).hexdigest(), "file": weights.name,
        **(extra or {}),
    }
    ckpt.atomic_write_bytes(weights, blob)
    ckpt.atomic_write_bytes(card_path, (json.dumps(card, indent=1) + "\n").encode())
    return weights


def _greedy_returns(actor: Any, spaces: _Spaces, episodes: int, seed: int) -> tuple[float, float]:
    from rlkit2.actors import TorchPolicyActor
    from rlkit2.core import evaluate
    from rlkit2.envs.gym_mujoco import GymEnvConfig
    from rlkit2.registry import make_env

    env = make_env(GymEnvConfig(id=spaces.gym_id, max_episode_steps=1000), seed)
    try:
        ev = evaluate(env, TorchPolicyActor(actor.mode, action_low=spaces.action_low, action_high=spaces.action_high),
                      episodes, seed=seed)
    finally:
        env.close()
    return ev["eval/return"], ev["eval/return_std"]


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
