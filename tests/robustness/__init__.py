"""Robustness suite (issue 9): faults, bad input and long runs.

Here: kill-and-resume per family (offline, imitation, RLHF), checkpoint writes killed mid-way, bad data
through the training entry point, bad config, real NaN/inf faults (stop and skip), outside services
(wandb, full disk), and hypothesis fuzzing of the readers not fuzzed elsewhere (robomimic, Minari, JSONL).

Covered elsewhere, not repeated: D4RL reader validation and fuzzing (tests/data/test_d4rl_io.py,
tests/data/test_d4rl_fuzz.py), online TD3 SIGKILL/resume (tests/foundation/test_kill_resume.py),
checkpoint truncation and ENOSPC in `checkpoint.save` (tests/foundation/test_checkpoint.py), CLI typos,
unknown agent, negative learning rate (tests/foundation/test_cli.py), wandb failing in the logger
(tests/foundation/test_logging.py), robomimic missing demo/keys (tests/imitation/test_robomimic_io.py).
"""
