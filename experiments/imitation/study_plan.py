"""What the imitation study runs: its policies (and the reference rows), its tasks and their budgets and
shift cells. `study.py` runs them, `study_report.py` tables them."""

from __future__ import annotations

import dataclasses

CELLS = "all:0,all:0.1,object:0.1,robot:0.1,noise:0.1"
ONLINE_CELLS = "all:0.1"


@dataclasses.dataclass(frozen=True)
class Policy:
    label: str
    role: str  # which of the task's presets its run starts from: "bc", "bc_rnn" or "poir"
    overrides: tuple[str, ...] = ()
    features: str = ""  # "obs": the policy sees only the task's features; "score": POIR scores on them
    online_from: str = ""  # fine-tuned online per cell from this offline policy's checkpoint
    reference: str = ""  # "zero" or "expert": a reference level, evaluated as is (nothing trained)
    updates_factor: int = 1  # offline updates = the task budget's times this


# "features" = the task's feature dims (POIR's preset score_dims); filled in per task by `overrides_for`
POLICIES = {
    "bc": Policy("BC, full obs", "bc"),
    "bc_features": Policy("BC, features", "bc", features="bc"),
    "bc_rnn_gmm": Policy("BC-RNN-GMM (robomimic), full obs", "bc_rnn"),
    # robomimic's baseline as robomimic would train it: at the shared budget the recurrent GMM is under-fit on both
    # tasks (`study fit`: its demo-action error is ~19x BC's on Can, ~60x on Lift)
    "bc_rnn_gmm_4x": Policy("BC-RNN-GMM (robomimic), full obs, 4x updates", "bc_rnn", updates_factor=4),
    "poir": Policy("POIR, full obs (prior and score)", "poir", ("agent.score_dims=[]",)),
    "poir_features": Policy("POIR, features (prior and score)", "poir", features="poir"),
    "bc_features_online": Policy("BC, features, fine-tuned online", "bc", features="bc", online_from="bc_features"),
    "poir_features_online": Policy("POIR, features, fine-tuned online", "poir", features="poir",
                                   online_from="poir_features"),
    # the levels that make a success rate mean something: doing nothing, and the demonstrator itself
    "zero_action": Policy("zero action (reference)", "", reference="zero"),
    "expert": Policy("scripted expert, the demonstrator (reference)", "", reference="expert"),
}
OFFLINE = [k for k, p in POLICIES.items() if not p.online_from and not p.reference]


@dataclasses.dataclass
class Budget:
    demos: int = 30
    offline_updates: int = 2000
    online_steps: int = 2000
    online_updates_per_episode: int = 100
    episodes: int = 30  # held-out episodes per (policy, cell, seed): 150 per cell over 5 seeds


@dataclasses.dataclass(frozen=True)
class Task:
    name: str  # robosuite's
    presets: dict[str, str]  # role -> experiment preset (conf/experiment/)
    budget: Budget
    cells: str
    online_cells: str


TASKS = {
    "lift": Task("Lift", {"bc": "bc_lift", "bc_rnn": "bc_rnn_lift", "poir": "poir_lift"}, Budget(), CELLS,
                 ONLINE_CELLS),
    # longer episodes (mean 124 expert steps vs Lift's ~24) and a place goal: more updates and online steps, a
    # smaller grid of cells
    "can": Task("PickPlaceCan", {"bc": "bc_can", "bc_rnn": "bc_rnn_can", "poir": "poir_can"},
                Budget(offline_updates=5000, online_steps=4000, episodes=20), "all:0,all:0.1,object:0.1", "all:0.1"),
}
