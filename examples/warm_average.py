"""Example (d): WARM -- average your own reward-model checkpoints into one reward model, and ship it.

    python examples/warm_average.py --steps 40 --out /tmp/warm

WARM (Ramé et al., 2024): reward models fine-tuned from one shared initialisation, with different runs
(learning rate, data order), are averaged *in weight space*: one model, one forward pass, more robust than
any member under label noise. Step 1 stands for your training: three MiniLM-L6 reward models (the packaged
offline encoder, mean-pooled, linear head) fine-tuned with the Bradley-Terry loss on noisy preference pairs
and saved as checkpoint files. Step 2 is the part you would run on your own checkpoints: load and average
them (`reward=warm` in rlkit2-train does the same), compare with the members and the prediction ensemble.
Step 3 saves the average as a Hugging Face folder and scores with `transformers` alone.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

from rlkit2.rewards.bradley_terry import BTTrainConfig, PreferencePair, evaluate_pairs, train_bradley_terry
from rlkit2.rewards.reward_model import RewardModel
from rlkit2.rewards.warm import WarmRewardConfig, load_combined

POOLING, MAX_LENGTH = "mean", 64
GOOD = ["thanks for asking", "happy to help", "here is a clear answer", "great question", "glad you asked"]
BAD = ["figure it out yourself", "stop asking me", "that is a dumb question", "go away", "not my problem"]
TOPICS = ["fixing a bike", "baking bread", "learning python", "planting tomatoes", "booking a train"]


def preference_pairs(n: int, seed: int, label_noise: float = 0.0) -> list[PreferencePair]:
    """Chosen: a polite reply; rejected: a rude one (flipped with probability `label_noise`)."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        topic = rng.choice(TOPICS)
        good = f"{rng.choice(GOOD)} , about {topic} : start small ."
        bad = f"{rng.choice(BAD)} , about {topic} : start small ."
        if rng.random() < label_noise:
            good, bad = bad, good
        pairs.append(PreferencePair(f"how do I get started with {topic} ?", good, bad))
    return pairs


def train_members(out: Path, steps: int, lrs: list[float]) -> list[Path]:
    """Stand-in for your own training: one shared init (same seed), different lr and data order."""
    train = preference_pairs(200, seed=0, label_noise=0.2)
    paths = []
    for i, lr in enumerate(lrs):
        torch.manual_seed(0)  # the shared initialisation (the head's init included): what makes averaging work
        rm = RewardModel.from_pretrained("minilm", pooling=POOLING, max_length=MAX_LENGTH)
        train_bradley_terry(rm, train, BTTrainConfig(steps=steps, batch_size=8, lr=lr, data_seed=i))
        path = out / "members" / f"member{i:02d}.pt"
        rm.save(str(path))  # an rlkit2 checkpoint (checksummed); `reward=warm reward.directory=...` reads these
        paths.append(path)
    return paths


def transformers_only_rewards(folder: Path, prompts: list[str], responses: list[str]) -> torch.Tensor:
    """Deployment side, no rlkit2: the trunk by AutoModel, the head from reward_head.safetensors."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    tok, trunk = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    head = load_file(str(folder / "reward_head.safetensors"))
    cfg = json.loads((folder / "reward_head.json").read_text())
    enc = tok(prompts, responses, truncation="only_first", max_length=cfg["max_length"], padding=True,
              return_tensors="pt")
    with torch.no_grad():
        h = trunk(**enc).last_hidden_state
    assert cfg["pooling"] == "mean"
    m = enc.attention_mask[..., None].to(h.dtype)
    pooled = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
    return pooled @ head["weight"].T.squeeze(-1) + head["bias"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="Bradley-Terry steps per member")
    parser.add_argument("--test-pairs", type=int, default=100, help="held-out pairs for the accuracies")
    parser.add_argument("--out", type=Path, default=Path("outputs/example_warm"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    paths = train_members(args.out, args.steps, lrs=[2e-5, 5e-5, 1e-4])  # 1. your checkpoints

    test = preference_pairs(args.test_pairs, seed=1)  # clean held-out labels
    results = {}
    for i in range(len(paths)):  # 2. members, WARM and the ensemble of predictions, on held-out pairs
        member = load_combined(WarmRewardConfig(checkpoints=[str(p) for p in paths], combine="member", member=i,
                                                pooling=POOLING, max_length=MAX_LENGTH))
        results[f"member{i}"] = evaluate_pairs(member, test)["accuracy"]
    warm = load_combined(WarmRewardConfig(directory=str(args.out / "members"), combine="average",
                                          pooling=POOLING, max_length=MAX_LENGTH))
    results["warm"] = evaluate_pairs(warm, test)["accuracy"]
    ens = load_combined(WarmRewardConfig(directory=str(args.out / "members"), combine="ensemble",
                                         pooling=POOLING, max_length=MAX_LENGTH))
    results["ensemble"] = evaluate_pairs(ens, test)["accuracy"]

    folder = warm.save_pretrained(args.out / "warm_rm")  # 3. one HF folder
    prompts, responses = [p.prompt for p in test[:8]], [p.chosen for p in test[:8]]
    with torch.no_grad():
        ours = warm(prompts, responses)
    theirs = transformers_only_rewards(folder, prompts, responses)
    results["max_abs_diff_transformers_only"] = float((ours - theirs).abs().max())
    results["warm_rm"] = str(folder)
    print(json.dumps(results, indent=2))
    (args.out / "summary.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
