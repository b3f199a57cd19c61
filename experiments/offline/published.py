"""Published D4RL normalised scores of the peer agents, for the report's context rows.

Source: CORL (Tarasov et al., "CORL: Research-oriented Deep Offline Reinforcement Learning Library", NeurIPS
2023 Datasets and Benchmarks), README of github.com/tinkoff-ai/CORL (commit 022e449b), "Offline / Last Scores /
Gym-MuJoCo": the *final* normalised score of each run (mean ± std over seeds), 1M updates, D4RL's -v2 datasets
on the mujoco-py -v2 envs. Final scores were chosen over CORL's "best" table because a grid run's score is its
last evaluations too. CORL's BC is behaviour cloning on the whole dataset (our offline_bc).

These are **not comparable 1:1** with the grid: the grid's datasets are generated here on Gymnasium's v5 envs
with rlkit2's own (weaker) behaviour policies, runs get 100k updates (CORL: 1M), and evaluation uses the v5
envs; only the normalisation (D4RL's reference returns) is shared.
"""

from __future__ import annotations

SOURCE = ("CORL README (github.com/tinkoff-ai/CORL @ 022e449b), Offline / Last Scores / Gym-MuJoCo: "
          "final normalised score, mean ± std over seeds, 1M updates, D4RL v2")
LABEL = "D4RL v2, published, not comparable 1:1: generated v5 data"
LABEL_D4RL_FILE = "D4RL v2, published, not comparable 1:1: evaluated on the v5 envs"

# our agent -> the peer's name in the table
PEERS: dict[str, str] = {"td3_bc": "TD3+BC", "iql": "IQL", "cql": "CQL", "offline_bc": "BC"}

# D4RL dataset -> peer -> (mean, std)
SCORES: dict[str, dict[str, tuple[float, float]]] = {
    "halfcheetah-medium-v2": {"BC": (42.40, 0.19), "TD3+BC": (48.10, 0.18), "CQL": (47.04, 0.22),
                              "IQL": (48.31, 0.22)},
    "halfcheetah-medium-replay-v2": {"BC": (35.66, 2.33), "TD3+BC": (44.84, 0.59), "CQL": (45.04, 0.27),
                                     "IQL": (44.46, 0.22)},
    "hopper-medium-v2": {"BC": (53.51, 1.76), "TD3+BC": (60.37, 3.49), "CQL": (59.08, 3.77), "IQL": (67.53, 3.78)},
    "hopper-medium-replay-v2": {"BC": (29.81, 2.07), "TD3+BC": (64.42, 21.52), "CQL": (95.11, 5.27),
                                "IQL": (97.43, 6.39)},
    "hopper-medium-expert-v2": {"BC": (52.30, 4.01), "TD3+BC": (101.17, 9.07), "CQL": (99.26, 10.91),
                                "IQL": (107.42, 7.80)},
    "walker2d-medium-v2": {"BC": (63.23, 16.24), "TD3+BC": (82.71, 4.78), "CQL": (80.75, 3.28), "IQL": (80.91, 3.17)},
    "walker2d-medium-replay-v2": {"BC": (21.80, 10.15), "TD3+BC": (85.62, 4.01), "CQL": (73.09, 13.22),
                                  "IQL": (82.15, 3.03)},
}


def d4rl_counterpart(dataset: str) -> tuple[str, bool] | None:
    """A grid dataset label -> (the D4RL dataset it mirrors, whether it *is* that D4RL file's name); None if none."""
    from rlkit2.data.names import parse_d4rl_name, parse_generated_name

    gen = parse_generated_name(dataset)
    if gen is not None:
        return gen.d4rl_counterpart, False
    d4rl = parse_d4rl_name(dataset)
    if d4rl is not None:
        return d4rl.name, True  # only -v2 files have published rows here
    return None


def published_rows(dataset: str) -> list[tuple[str, float, float, str]]:
    """(peer, mean, std, label) rows for a grid dataset (empty when no published numbers match)."""
    c = d4rl_counterpart(dataset)
    if c is None or c[0] not in SCORES:
        return []
    label = LABEL_D4RL_FILE if c[1] else LABEL
    order = ("TD3+BC", "IQL", "CQL", "BC")
    rows = sorted(SCORES[c[0]].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
    return [(peer, m, s, f"{label} ({c[0]})") for peer, (m, s) in rows]
