"""Offline data: D4RL HDF5 files, Minari datasets on disk, and D4RL-style datasets generated here.

Dataset names: D4RL's (`hopper-medium-v2`) name D4RL's own files only; datasets generated here have
their own names (`hopper-v5-medium`); see `rlkit2.data.names`.

The control trainer calls `load_offline_dataset(env_cfg)` for offline agents and
`score_function(env_cfg, dataset.metadata)` for `rlkit2.core.evaluate`'s `score_fn`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rlkit2.core import ConfigError, DataError
from rlkit2.data.d4rl import (
    GENERATION_METADATA_KEYS,
    D4RLData,
    episode_returns,
    generation_metadata,
    kept_rows,
    read_d4rl,
    to_transitions,
    write_d4rl,
)
from rlkit2.data.names import (
    D4RL_ENVS,
    D4RL_KINDS,
    D4RLName,
    GeneratedName,
    dataset_name_help,
    parse_d4rl_name,
    parse_dataset_name,
    parse_generated_name,
    resolve_dataset_path,
    resolve_env_id,
)
from rlkit2.data.scores import (
    D4RL_REFERENCE,
    REFERENCE_SETS,
    V5_REFERENCE,
    add_v5_score,
    evaluate_with_scores,
    normalized_score,
    reference_returns,
    score_function,
    score_functions,
)

__all__ = [
    "D4RL_ENVS", "D4RL_KINDS", "D4RL_REFERENCE", "D4RLData", "D4RLName", "GeneratedName", "OfflineDataset",
    "REFERENCE_SETS", "V5_REFERENCE", "add_v5_score", "dataset_name_help", "evaluate_with_scores",
    "generation_metadata", "load_offline_dataset", "normalized_score", "parse_d4rl_name", "parse_dataset_name",
    "parse_generated_name", "read_d4rl", "reference_returns", "resolve_dataset_path", "resolve_env_id",
    "score_function", "score_functions", "to_transitions", "write_d4rl",
]


@dataclasses.dataclass
class OfflineDataset:
    """A fixed dataset of transitions, ready for `TransitionReplay.from_arrays(dataset.arrays)`.

    arrays (all float32, one row a transition): observations, actions, rewards, next_observations,
    terminals (1 = true end, no bootstrap; a time-limit end is *not* terminal), timeouts (1 = the
    episode was cut by the time limit after this step), next_actions (the dataset's a', for SARSA
    targets), next_action_valid (0 where a' is unknown - the episode ended after this step - and
    next_actions holds the row's own action as a placeholder). `TransitionReplay` keeps the fields it
    knows (next_actions included) and ignores the others.
    """

    arrays: dict[str, np.ndarray]
    metadata: dict[str, Any]
    source: str  # the file path, or "minari:<id>"
    env_id: str  # the Gymnasium id to evaluate on
    d4rl_name: str | None = None  # D4RL's name, only for D4RL's own files
    episode_returns: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    infos: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # infos/*, one row a transition
    dataset_name: str | None = None  # the name it was loaded by: a D4RL name or a generated one (hopper-v5-medium)

    def __len__(self) -> int:
        return len(self.arrays["observations"])

    @property
    def obs_dim(self) -> int:
        return int(self.arrays["observations"].shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.arrays["actions"].shape[1])


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def _env_spaces(gym_id: str) -> tuple[Any, Any] | None:
    """The env's (observation_space, action_space), or None when `gym_id` is not a registered Gymnasium id."""
    import gymnasium as gym

    if gym_id not in gym.registry:
        return None
    env = gym.make(gym_id)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def _check_episode_lengths(rows: Mapping[str, np.ndarray], source: str, gym_id: str, configured: Any) -> None:
    """Refuse an episode longer than the env's time limit: the file lost its terminals/timeouts flags, and its
    transitions (and a') would silently run across episode boundaries. The limit is the larger of
    env.max_episode_steps and the Gymnasium registration's; no check when neither is known."""
    import gymnasium as gym

    from rlkit2.data.d4rl import episode_ends

    limits = [int(configured)] if configured else []
    if gym_id in gym.registry and gym.registry[gym_id].max_episode_steps:
        limits.append(int(gym.registry[gym_id].max_episode_steps))  # type: ignore[arg-type]  # checked just above
    if not limits:
        return
    ends = np.flatnonzero(episode_ends(rows["terminals"], rows["timeouts"]))
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    i = int(np.argmax(lengths))
    if lengths[i] > max(limits):
        raise DataError(f"dataset {source}: rows {starts[i]}..{ends[i]} form one episode of {lengths[i]} steps with "
                        f"no terminal or timeout, longer than {gym_id}'s time limit ({max(limits)}); the file's "
                        "episode-end flags ('terminals'/'timeouts') are missing or wrong")


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or "\\" in spec or spec.startswith(("~", ".")) or \
        Path(spec).suffix.lower() in (".hdf5", ".h5", ".hdf")


def load_offline_dataset(env_cfg: Any, *, seed: int = 0) -> OfflineDataset:
    """Load the dataset an env config names, as validated transitions.

    `env_cfg.dataset` may be a file path (`/data/hopper.hdf5`), a D4RL name (`hopper-medium-v2`: D4RL's own
    file, from rlkit2's cache then D4RL's; a generated file under that name is refused), a generated name
    (`hopper-v5-medium`: made by `rlkit2-data make`, from rlkit2's cache), or `minari:<id>`; when empty,
    `env_cfg.id` is used if it is a dataset name. Any other name is refused with examples of both kinds.
    Rows are checked against the env's spaces (observation width, action bounds) when `env_cfg.id`
    resolves to a registered Gymnasium env. `seed` is accepted so every loader has the same signature:
    loading is deterministic and does not use it.
    """
    del seed
    env_name = str(_get(env_cfg, "id", "") or "")
    spec = str(_get(env_cfg, "dataset", "") or "")
    gym_id, env_dataset = resolve_env_id(env_name) if env_name else ("", None)
    if not spec:
        if env_dataset is None:
            raise ConfigError(f"env '{env_name}' names no dataset: set env.dataset to a file, a dataset name or "
                              f"minari:<id>, or use a dataset name as env.id. {dataset_name_help()}")
        spec = env_dataset
    d4rl_name = env_dataset if env_dataset is not None and parse_d4rl_name(env_dataset) is not None else None
    dataset_name: str | None = None

    if spec.startswith("minari:"):
        from rlkit2.data.minari_io import read_minari

        data = read_minari(spec[len("minari:"):])
        source = spec
    else:
        if Path(spec).expanduser().exists() or _looks_like_path(spec):
            path = Path(spec).expanduser()
        else:
            parsed = parse_dataset_name(spec)  # neither kind of name: refused with examples of both
            path = resolve_dataset_path(parsed.name)
            dataset_name = parsed.name
            if isinstance(parsed, D4RLName):
                d4rl_name = d4rl_name or parsed.name
            if not gym_id:
                gym_id = parsed.gym_id
        data = read_d4rl(path)
        source = str(path)
    metadata = dict(data.metadata)
    if not gym_id:
        gym_id = str(metadata.get("env_id", ""))
        if not gym_id:
            raise ConfigError(f"dataset {source}: env.id is empty and the dataset does not name its env "
                              "(metadata env_id)")
    generated = any(k in metadata for k in GENERATION_METADATA_KEYS)
    if d4rl_name is None and not generated and isinstance(metadata.get("d4rl_name"), str) and metadata["d4rl_name"]:
        d4rl_name = metadata["d4rl_name"]  # D4RL's own name for a D4RL file given by path
    if dataset_name is None and isinstance(metadata.get("dataset_name"), str) and metadata["dataset_name"]:
        dataset_name = metadata["dataset_name"]

    spaces = _env_spaces(gym_id)
    if spaces is not None:
        obs_space, act_space = spaces
        obs_w = int(np.prod(obs_space.shape))
        if data.arrays["observations"].shape[1] != obs_w:
            raise DataError(f"dataset {source}: observations have width {data.arrays['observations'].shape[1]} "
                            f"but env {gym_id} observes {obs_w} numbers; is this the right dataset for the env?")
        act_w = int(np.prod(act_space.shape))
        if data.arrays["actions"].shape[1] != act_w:
            raise DataError(f"dataset {source}: actions have width {data.arrays['actions'].shape[1]} "
                            f"but env {gym_id} takes {act_w}")
        from rlkit2.data.d4rl import validate_arrays

        validate_arrays(data.arrays, source=source, action_low=act_space.low, action_high=act_space.high)

    rows = data.arrays
    _check_episode_lengths(rows, source, gym_id, _get(env_cfg, "max_episode_steps", None))
    returns = episode_returns(rows["rewards"], rows["terminals"], rows["timeouts"])
    keep = kept_rows(rows)
    infos = {k: v[keep] for k, v in data.infos.items()}
    return OfflineDataset(to_transitions(rows), metadata, source, gym_id, d4rl_name, returns, infos,
                          dataset_name or d4rl_name)
