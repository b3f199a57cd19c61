"""The spine: the four interfaces every rlkit2 agent is made of, and what a builder returns (`Agent`, `EnvSpec`).

Acme-style: an agent is an `Actor` (acts), a `Learner` (updates parameters from a
`Replay`), a `Replay` (stores and samples experience) and an `EnvironmentLoop`
that runs an actor in an environment. Nothing family-specific lives here: control
agents, imitation agents and language agents all implement these same protocols.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np


class RLKitError(Exception):
    """Base class of every error rlkit2 raises on purpose (bad data, bad config, ...)."""


class DataError(RLKitError, ValueError):
    """A dataset or file is malformed; the message names the file, key and problem."""


class ConfigError(RLKitError, ValueError):
    """A configuration value is unknown or out of range; the message names the option."""


class NumericalError(RLKitError, FloatingPointError):
    """A loss or gradient became NaN/inf."""


# --------------------------------------------------------------------------- interfaces


@runtime_checkable
class Actor(Protocol):
    """Turns observations into actions and may learn from what it sees."""

    def act(self, observation: Any) -> Any:
        """Return an action for `observation` (batched or not, as the agent documents)."""

    def observe_first(self, observation: Any) -> None:
        """Called with the first observation of an episode."""

    def observe(self, action: Any, next_observation: Any, reward: float, terminated: bool, truncated: bool) -> None:
        """Called after every environment step."""

    def update(self) -> None:
        """Pull fresh parameters from the learner (no-op when they share modules)."""


class Learner(abc.ABC):
    """Owns parameters and optimisers; one `step()` is one update from its replay."""

    @abc.abstractmethod
    def step(self) -> dict[str, Any]:
        """Do one update; return metrics (tensors or floats, read only when logged)."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: parameters, optimisers, step counters."""

    @abc.abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Inverse of `state_dict`."""


@runtime_checkable
class Replay(Protocol):
    """Where experience lives. Any object with `sample` can feed a learner."""

    def add(self, *args: Any, **kwargs: Any) -> None: ...

    def sample(self, batch_size: int) -> Any: ...

    def __len__(self) -> int: ...


# --------------------------------------------------------------------------- what a builder returns


@dataclasses.dataclass
class EnvSpec:
    """What a control agent needs to know about its environment."""

    obs_dim: int
    act_dim: int
    action_low: float = -1.0
    action_high: float = 1.0


@dataclasses.dataclass
class Agent:
    """What every agent builder returns (`make_agent(config, spec_or_env, replay, seed, **kw)`): the learner,
    the evaluation (greedy) actor and, for online collection or language rollouts, an exploring (sampling) actor."""

    learner: Learner
    policy: Actor
    explorer: Actor | None = None
    # what rebuilds it from saved weights (rlkit2.save_policy); stamped by rlkit2.registry.build_agent
    name: str = ""
    config: Any = None
    spec: EnvSpec | None = None  # control agents; None for language agents (their env is a text env)


class BaseActor:
    """Convenience base: the observe hooks and `update` default to no-ops."""

    def act(self, observation: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def observe_first(self, observation: Any) -> None:
        pass

    def observe(self, action: Any, next_observation: Any, reward: float, terminated: bool, truncated: bool) -> None:
        pass

    def update(self) -> None:
        pass

    def __call__(self, observation: Any) -> Any:
        """`actor(obs)` is `actor.act(obs)`: a saved policy is used as a plain function."""
        return self.act(observation)


class FunctionActor(BaseActor):
    """Wraps a plain `policy(obs) -> action` callable as an Actor."""

    def __init__(self, policy: Callable[[Any], Any]):
        self.policy = policy

    def act(self, observation: Any) -> Any:
        return self.policy(observation)


# --------------------------------------------------------------------------- environment loop


@dataclasses.dataclass
class EpisodeResult:
    episode_return: float
    length: int
    success: bool
    seconds: float


class EnvironmentLoop:
    """Runs an actor in a Gymnasium-style environment, episode by episode.

    Used both to collect experience (the actor's `observe` feeds a replay) and to
    evaluate. `success` comes from `info["success"]` or `info["is_success"]` when
    the environment reports it (robosuite adapters do).
    """

    def __init__(self, env: Any, actor: Actor, *, max_episode_steps: int | None = None):
        self.env = env
        self.actor = actor
        self.max_episode_steps = max_episode_steps

    def run_episode(self, seed: int | None = None) -> EpisodeResult:
        start = time.perf_counter()
        obs, _ = self.env.reset(seed=seed)
        self.actor.observe_first(obs)
        ret, length, success = 0.0, 0, False
        while True:
            action = self.actor.act(obs)
            obs, reward, terminated, truncated, info = self.env.step(action)
            length += 1
            ret += float(reward)
            success = success or bool(info.get("success", info.get("is_success", False)))
            if self.max_episode_steps is not None and length >= self.max_episode_steps:
                truncated = True
            self.actor.observe(action, obs, float(reward), bool(terminated), bool(truncated))
            if terminated or truncated:
                break
        return EpisodeResult(ret, length, success, time.perf_counter() - start)

    def run(self, num_episodes: int, seed: int | None = None) -> list[EpisodeResult]:
        results = []
        for i in range(num_episodes):
            results.append(self.run_episode(None if seed is None else seed + i))
        return results


def evaluate(
    env: Any,
    actor: Actor,
    num_episodes: int,
    *,
    seed: int = 0,
    score_fn: Callable[[float], float] | None = None,
    max_episode_steps: int | None = None,
) -> dict[str, float]:
    """The one evaluation loop: N seeded episodes, mean/std of return (and score, success).

    Keys follow the metric-key convention (docs/architecture.md): `eval/return`, `eval/return_std`, `eval/length`,
    `eval/success_rate`, and `eval/normalized_score(_std)` when `score_fn` is given.
    """
    results = EnvironmentLoop(env, actor, max_episode_steps=max_episode_steps).run(num_episodes, seed=seed)
    returns = np.array([r.episode_return for r in results], dtype=np.float64)
    out = {
        "eval/return": float(returns.mean()),
        "eval/return_std": float(returns.std()),
        "eval/length": float(np.mean([r.length for r in results])),
        "eval/success_rate": float(np.mean([r.success for r in results])),
        "eval/episodes": float(len(results)),
    }
    if score_fn is not None:
        scores = np.array([score_fn(r) for r in returns])
        out["eval/normalized_score"] = float(scores.mean())
        out["eval/normalized_score_std"] = float(scores.std())
    return out
