"""Robustness suite (issue 9): faults, bad input and long runs.

test_kill_resume.py       SIGKILL a real `rlkit2-train` at a random step (RLKIT2_KILL_SEED replays it) and resume:
                          offline (TD3+BC), imitation (POIR, offline + online phase), RLHF (PPO on the tiny LM)
                          end exactly where an uninterrupted run ends (state and metrics.jsonl); in-process
                          resume-exactness for IQL/Q-sarsa-AC2 (mid log window), WARP and J-BOND.
test_checkpoint_faults.py a kill inside a checkpoint write (forked writer) is never picked up and its temp file is
                          pruned; payload/checksum mismatch; a torn last metrics line and a truncated checkpoint.
test_bad_data.py          D4RL files through `rlkit2.train.run` (missing key, dtype, shape, NaN/inf, empty,
                          truncated, wrong env width, no terminal/timeout), robomimic files, JSONL prompt files.
test_bad_config.py        unknown env/agent/experiment names list the valid ones; out-of-range values (also the
                          lm runner's) and a batch larger than the dataset (`rlkit2-train`) are refused before
                          training; resuming with another architecture names the changed option.
test_numerical_faults.py  real NaN/inf (overflowing rewards, NaN loss, NaN gradient with a finite loss) under
                          nan_policy=stop (step, loss name, loadable last-good checkpoint) and skip (counted in
                          train/skipped_updates, parameters finite), for the control, imitation and lm runners.
test_services.py          wandb unreachable or failing mid-run; a full disk at a checkpoint, then resume.
test_fuzz_readers.py      hypothesis fuzzing of the robomimic, Minari and JSONL readers (RLKIT2_FUZZ_EXAMPLES).
test_soak.py              slow: three kills in one run; a 5000-step run's bounded checkpoint dir.

Covered elsewhere, not repeated: D4RL reader validation and fuzzing (tests/data/test_d4rl_io.py,
tests/data/test_d4rl_fuzz.py), online TD3 SIGKILL/resume (tests/foundation/test_kill_resume.py),
checkpoint truncation and ENOSPC in `checkpoint.save` (tests/foundation/test_checkpoint.py), CLI typos,
unknown agent, negative learning rate (tests/foundation/test_cli.py), wandb failing in the logger
(tests/foundation/test_logging.py), robomimic missing demo/keys (tests/imitation/test_robomimic_io.py).
"""
