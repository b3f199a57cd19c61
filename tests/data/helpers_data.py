"""Small D4RL-shaped datasets the data tests write themselves."""

from __future__ import annotations

import numpy as np


def episodes_rows(lengths: list[int], ends: list[str], obs_dim: int = 3, act_dim: int = 2, seed: int = 0,
                  with_next: bool = True) -> dict[str, np.ndarray]:
    """Rows of consecutive episodes. `ends[k]` is "terminal", "timeout" or "cut" (no flag: end of file).

    Observation rows encode (episode, step) so tests can see which row a value came from:
    obs[..., 0] = episode, obs[..., 1] = step; next_observations continue the same episode (step + 1).
    """
    rng = np.random.default_rng(seed)
    obs, nxt, act, rew, term, tout = [], [], [], [], [], []
    for e, (n, end) in enumerate(zip(lengths, ends, strict=True)):
        for t in range(n):
            o = np.zeros(obs_dim, np.float32)
            o[0], o[1] = e, t
            o[2:] = rng.normal(size=obs_dim - 2)
            no = o.copy()
            no[1] = t + 1
            obs.append(o)
            nxt.append(no)
            act.append(rng.uniform(-1, 1, act_dim).astype(np.float32))
            rew.append(np.float32(e * 100 + t))
            last = t == n - 1
            term.append(last and end == "terminal")
            tout.append(last and end == "timeout")
    rows = {
        "observations": np.stack(obs),
        "actions": np.stack(act),
        "rewards": np.array(rew, np.float32),
        "terminals": np.array(term, bool),
        "timeouts": np.array(tout, bool),
    }
    if with_next:
        rows["next_observations"] = np.stack(nxt)
    return rows
