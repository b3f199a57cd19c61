"""Normalised scores: 100 * (return - random) / (expert - random), on two reference sets.

- "d4rl": D4RL's published reference returns (Fu et al., 2020, *D4RL: Datasets for Deep Data-Driven
  Reinforcement Learning*; listed in docs/datasets.md), measured on the mujoco-py `-v2` envs.
  Scores on these compare with published D4RL tables. Logged as `eval/normalized_score`, also for the
  datasets generated here (`hopper-v5-medium`): comparable in spirit only, since those run on the v5
  envs with rlkit2's behaviour policies (their metadata says so: `reference_returns: d4rl`).
- "v5": reference returns measured on the Gymnasium `-v5` envs: this project's uniform-random policy
  and its own SAC expert (see rlkit2.data.behaviour). A generated file stores the ones it was made with in
  its metadata (`ref_random_return_v5`, `ref_expert_return_v5`); a Minari dataset's
  `ref_min_score`/`ref_max_score` (also measured on v5) play the same role. Logged as
  `eval/normalized_score_v5`. They tell what the simulators here give; the two sets differ because
  the simulators differ slightly and because our expert is trained with a much smaller budget.

`score_function(env_cfg, metadata)` is the `score_fn` for `rlkit2.core.evaluate` (-> `eval/normalized_score`);
`add_v5_score(metrics, ...)` adds `eval/normalized_score_v5` to evaluate's output (the score is affine in
the return, so the mean score is the score of the mean return).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from rlkit2.data.names import env_family, parse_d4rl_name, resolve_env_id

REFERENCE_SETS: dict[str, str] = {
    "d4rl": "D4RL's reference returns (mujoco-py -v2 envs, D4RL's random and expert policies)",
    "v5": "returns measured on Gymnasium -v5 envs with rlkit2's uniform-random policy and its own SAC expert",
}

# family -> (random return, expert return). D4RL's infos.py REF_MIN_SCORE / REF_MAX_SCORE.
D4RL_REFERENCE: dict[str, tuple[float, float]] = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
}

# family -> (random return, expert return) measured here on the -v5 envs by `rlkit2-data make` (seed 0):
# random = mean return of the complete episodes of a 100k-step uniform-random dataset; expert = mean
# greedy return (10 episodes) of the best snapshot of one SAC run. These SAC runs are scaled down (64x64
# MLPs, 40k-60k env steps on a shared 2-core CPU), so these "experts" are far below D4RL's: v5 scores are
# relative to what this budget produced. A file's own metadata refs take precedence over this table.
V5_REFERENCE: dict[str, tuple[float, float]] = {
    "halfcheetah": (-282.3568768530316, 2169.363736267327),
    "hopper": (17.766444647413383, 446.6073278235102),
    "walker2d": (1.6972467662718282, 941.6539800632958),
}
V5_REFERENCE_NOTES: dict[str, str] = {
    "halfcheetah": "SAC 64x64, 40k env steps, expert = step-40k snapshot",
    "hopper": "SAC 64x64, 60k env steps, expert = step-60k snapshot",
    "walker2d": "SAC 64x64, 40k env steps, expert = step-25k snapshot (the run later collapsed)",
}

# Metadata keys of generated files.
META_RANDOM_V5, META_EXPERT_V5 = "ref_random_return_v5", "ref_expert_return_v5"
META_RANDOM_D4RL, META_EXPERT_D4RL = "ref_random_return_d4rl", "ref_expert_return_d4rl"
# Minari's names for its (v5) reference returns.
MINARI_MIN, MINARI_MAX = "ref_min_score", "ref_max_score"


def normalized_score(episode_return: float, random_return: float, expert_return: float) -> float:
    if expert_return == random_return:
        raise ValueError(f"degenerate reference returns: random == expert == {random_return}")
    return 100.0 * (float(episode_return) - random_return) / (expert_return - random_return)


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    if cfg is None:
        return default
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def _family(env_cfg: Any, metadata: Mapping[str, Any] | None) -> str | None:
    for name in (_get(env_cfg, "id", ""), _get(env_cfg, "dataset", ""), _get(metadata, "d4rl_name", ""),
                 _get(metadata, "env_id", "")):
        if not name or not isinstance(name, str):
            continue
        try:
            parsed = parse_d4rl_name(name)
        except Exception:  # noqa: BLE001 - a malformed name just gives no family
            parsed = None
        fam = parsed.env if parsed is not None else env_family(resolve_env_id(name)[0])
        if fam is not None:
            return fam
    return None


def reference_returns(env_cfg: Any, metadata: Mapping[str, Any] | None = None,
                      reference: str = "d4rl") -> tuple[float, float] | None:
    """(random, expert) returns of reference set `reference` ("d4rl" or "v5") for this env, or None."""
    if reference not in REFERENCE_SETS:
        raise ValueError(f"unknown reference set '{reference}'; valid: {', '.join(REFERENCE_SETS)}")
    fam = _family(env_cfg, metadata)
    if reference == "d4rl":
        return D4RL_REFERENCE.get(fam) if fam else None
    md = metadata or {}
    for lo, hi in ((META_RANDOM_V5, META_EXPERT_V5), (MINARI_MIN, MINARI_MAX)):
        if md.get(lo) is not None and md.get(hi) is not None and float(md[hi]) != float(md[lo]):
            return float(md[lo]), float(md[hi])
    return V5_REFERENCE.get(fam) if fam else None


def _score(ret: float, lo: float, hi: float) -> float:
    return normalized_score(ret, lo, hi)


def score_function(env_cfg: Any, dataset_metadata: Mapping[str, Any] | None = None,
                   reference: str = "auto") -> Callable[[float], float] | None:
    """`score_fn` for `rlkit2.core.evaluate` (its output is logged as `eval/normalized_score`).

    reference="auto": D4RL's references when the env is one of D4RL's (by D4RL name, generated name or v5 id),
    so the number compares with published tables; otherwise the dataset's own (v5/Minari) references;
    None when neither is known. "d4rl" / "v5" force a set (None when that set is unknown here).
    """
    if reference == "auto":
        refs = reference_returns(env_cfg, dataset_metadata, "d4rl") or \
            reference_returns(env_cfg, dataset_metadata, "v5")
    else:
        refs = reference_returns(env_cfg, dataset_metadata, reference)
    if refs is None:
        return None
    return functools.partial(_score, lo=refs[0], hi=refs[1])


def score_functions(env_cfg: Any,
                    dataset_metadata: Mapping[str, Any] | None = None) -> dict[str, Callable[[float], float]]:
    """Metric name -> score function, for every reference set known for this env."""
    out: dict[str, Callable[[float], float]] = {}
    primary = score_function(env_cfg, dataset_metadata)
    if primary is not None:
        out["eval/normalized_score"] = primary
    if reference_returns(env_cfg, dataset_metadata, "d4rl") is not None:  # primary is D4RL's: add v5
        v5 = score_function(env_cfg, dataset_metadata, "v5")
        if v5 is not None:
            out["eval/normalized_score_v5"] = v5
    return out


def add_v5_score(metrics: dict[str, float], env_cfg: Any,
                 dataset_metadata: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Add `eval/normalized_score_v5` (and `_std`) to `evaluate`'s metrics when v5 refs are known (in place)."""
    fns = score_functions(env_cfg, dataset_metadata)
    fn = fns.get("eval/normalized_score_v5")
    if fn is not None and "eval/return" in metrics:
        metrics["eval/normalized_score_v5"] = fn(metrics["eval/return"])
        if "eval/return_std" in metrics:
            metrics["eval/normalized_score_v5_std"] = abs(fn(metrics["eval/return_std"]) - fn(0.0))
    return metrics


def evaluate_with_scores(env: Any, actor: Any, num_episodes: int, env_cfg: Any,
                         dataset_metadata: Mapping[str, Any] | None = None, *, seed: int = 0,
                         max_episode_steps: int | None = None) -> dict[str, float]:
    """The evaluation helper shared by offline agents: `rlkit2.core.evaluate` with this env's scores.

    Gives eval/return(_std), eval/normalized_score(_std) (D4RL refs for D4RL envs) and, when known,
    eval/normalized_score_v5(_std).
    """
    from rlkit2.core import evaluate

    metrics = evaluate(env, actor, num_episodes, seed=seed, score_fn=score_function(env_cfg, dataset_metadata),
                       max_episode_steps=max_episode_steps)
    return add_v5_score(metrics, env_cfg, dataset_metadata)
