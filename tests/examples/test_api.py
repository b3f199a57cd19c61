"""The public API: rlkit2.make without Hydra, any replay with `sample`, saved policies for every control agent
(offline RL, BC, POIR), language policies and reward models as plain Hugging Face folders."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import rlkit2
from rlkit2 import Batch, ConfigError, EnvSpec


def toy_arrays(n: int = 512, obs_dim: int = 3, act_dim: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Transitions whose behaviour action is a fixed linear function of the state (plus noise)."""
    r = np.random.default_rng(seed)
    obs = r.normal(2.0, 3.0, (n, obs_dim)).astype(np.float32)  # far from N(0, 1): normalisation matters
    act = np.tanh(obs[:, :act_dim] * 0.3 + r.normal(0, 0.05, (n, act_dim))).astype(np.float32)
    return {"observations": obs, "actions": act, "rewards": -np.abs(obs[:, 0]).astype(np.float32),
            "next_observations": np.roll(obs, -1, 0), "terminals": np.zeros(n, np.float32),
            "next_actions": np.roll(act, -1, 0)}


class SampleOnlyReplay:
    """The minimum a replay needs: `sample`."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.t = {k: torch.as_tensor(v) for k, v in arrays.items() if k != "next_actions"}
        self.calls = 0

    def sample(self, batch_size: int) -> Batch:
        self.calls += 1
        idx = torch.randint(0, len(self.t["observations"]), (batch_size,))
        return Batch(**{k: v[idx] for k, v in self.t.items()})


def test_public_names_are_exported():
    assert set(rlkit2.__all__) >= {"make", "agent_config", "load_policy", "save_policy", "evaluate", "EnvSpec",
                                   "TransitionReplay", "Batch", "Actor", "Learner", "Replay", "EnvironmentLoop"}
    for name in rlkit2.__all__:
        assert getattr(rlkit2, name) is not None
    assert {"qsarsa", "td3_bc", "iql", "bc", "poir", "ppo_lm", "warp", "jbond"} <= set(rlkit2.agent_names())


def test_agent_config_refuses_unknown_and_mistyped_options():
    cfg = rlkit2.agent_config("td3_bc", hidden=[8], alpha=1.0)
    assert cfg.hidden == [8] and cfg.alpha == 1.0 and type(cfg).__name__ == "TD3BCConfig"
    with pytest.raises(ConfigError, match="alpah"):
        rlkit2.agent_config("td3_bc", alpah=1.0)
    with pytest.raises(ConfigError, match="alpha"):
        rlkit2.agent_config("td3_bc", alpha="lots")
    with pytest.raises(ConfigError, match="valid agents"):
        rlkit2.make("no_such_agent", EnvSpec(3, 2))
    # nested dataclass options of language agents
    assert rlkit2.agent_config("ppo_lm", model={"arch": "gemma"}).model.arch == "gemma"


def test_make_with_a_sample_only_replay_trains_td3_bc():
    replay = SampleOnlyReplay(toy_arrays())
    with pytest.raises(ConfigError, match="arrays"):  # obs normalisation needs the data's statistics
        rlkit2.make("td3_bc", EnvSpec(3, 2), replay)
    agent = rlkit2.make("td3_bc", EnvSpec(3, 2), replay, normalize_obs=False, hidden=[32, 32], batch_size=64)
    first = [float(agent.learner.step()["critic_loss"]) for _ in range(5)]
    for _ in range(150):
        m = agent.learner.step()
    assert replay.calls == 155 and float(m["critic_loss"]) < np.mean(first)
    assert agent.policy(np.zeros(3, np.float32)).shape == (2,)


@pytest.mark.parametrize("name", ["qsarsa", "iql", "bc"])
def test_saved_policy_carries_its_normalisation(tmp_path, name):
    """Offline agents and BC from a dict of arrays; the saved policy reproduces the trained one exactly and
    its normaliser holds the dataset's statistics (it would act differently with identity statistics)."""
    arrays = toy_arrays()
    torch.manual_seed(0)
    agent = rlkit2.make(name, EnvSpec(3, 2), arrays, hidden=[32, 32], batch_size=64)
    for _ in range(30):
        agent.learner.step()
    path = rlkit2.save_policy(agent, tmp_path / "policy.pt")
    policy, info = rlkit2.load_policy(tmp_path, with_info=True)
    assert info["agent"] == name
    obs = arrays["observations"][:32]
    np.testing.assert_array_equal(policy(obs), agent.policy(obs))
    np.testing.assert_array_equal(policy(obs[0]), agent.policy(obs[0]))  # unbatched too
    on_cpu = rlkit2.load_policy(tmp_path / "policy.pt", device=torch.device("cpu"))  # the documented device=
    np.testing.assert_array_equal(on_cpu(obs), agent.policy(obs))
    norms = [m for m in policy.policy_fn.modules() if type(m).__name__ == "Normalizer"]
    assert norms and torch.allclose(norms[0].mean, torch.as_tensor(arrays["observations"].mean(0)), atol=1e-4)
    assert path.stat().st_size < 2_000_000  # no replay, no optimiser state


def test_poir_policy_saves_with_its_planner(tmp_path):
    from tests.imitation.test_poir import point_mass_demos

    torch.manual_seed(0)
    agent = rlkit2.make("poir", EnvSpec(2, 2), point_mass_demos(), batch_size=64, ensemble_size=2,
                        model_hidden=[32, 32], horizon=3, num_samples=16, prior={"hidden": [32, 32]})
    for _ in range(20):
        agent.learner.step()
    rlkit2.save_policy(agent, tmp_path / "policy.pt")
    policy = rlkit2.load_policy(tmp_path / "policy.pt")
    assert type(policy).__name__ == "POIRActor"
    far = np.array([0.5, 0.8], np.float32)  # off the expert's states: the planner acts
    state = agent.policy.planner.generator.get_state()
    policy.planner.generator.set_state(state)
    np.testing.assert_allclose(policy(far), agent.policy(far), atol=1e-6)
    assert policy._planned == 1


def test_load_policy_refuses_garbage(tmp_path):
    (tmp_path / "policy.pt").write_bytes(b"not a policy")
    with pytest.raises(rlkit2.CheckpointError, match="policy"):
        rlkit2.load_policy(tmp_path / "policy.pt")
    with pytest.raises(rlkit2.CheckpointError, match="no saved policy|no valid checkpoint"):
        rlkit2.load_policy(tmp_path / "missing")
    empty = tmp_path / "run"
    empty.mkdir()
    with pytest.raises(rlkit2.CheckpointError):
        rlkit2.load_policy(empty)


def test_checkpoint_without_config_is_refused_with_advice(tmp_path):
    from rlkit2 import checkpoint

    checkpoint.save({"learner": {}, "step": 1}, tmp_path / "step_000000001.pt")
    refusal = "as a policy file: .*; as a checkpoint: .*does not record its config .* load the run's policy.pt"
    with pytest.raises(rlkit2.CheckpointError, match=refusal):
        rlkit2.load_policy(tmp_path / "step_000000001.pt")
    # a language agent's checkpoint is refused before its text env is built, pointing at its HF folder
    checkpoint.save({"learner": {}, "step": 1, "config": {"agent": {"name": "ppo_lm"}, "env": {"kind": "text"}}},
                    tmp_path / "lm" / "step_000000001.pt")
    with pytest.raises(rlkit2.CheckpointError, match="'ppo_lm' is a language agent.*load_language_policy"):
        rlkit2.load_policy(tmp_path / "lm")


# --------------------------------------------------------------------------- language side


@pytest.fixture(scope="module")
def tiny_lm_agent():
    pytest.importorskip("transformers")
    from rlkit2.envs.text import TextEnvConfig, make_text_env

    env = make_text_env(TextEnvConfig(reward={"kind": "keyword", "word": "paris"}), 0)
    torch.manual_seed(0)
    return rlkit2.make("ppo_lm", env, seed=0, model={"hidden_size": 32, "num_layers": 2, "num_heads": 2,
                                                     "num_kv_heads": 1, "intermediate_size": 64},
                       generation={"max_new_tokens": 4}, prompts_per_step=4, minibatch_size=4)


def test_user_reward_callable_plugs_into_make(tiny_lm_agent):
    from rlkit2.envs.text import TextEnvConfig, make_text_env

    seen = []

    def reward(documents, responses):  # returns a list: make() wraps and checks it
        seen.append(len(responses))
        return [float(len(r.split())) for r in responses]

    env = make_text_env(TextEnvConfig(), 0)
    agent = rlkit2.make("ppo_lm", env, seed=0, reward_fn=reward, model={"hidden_size": 32, "num_layers": 2,
                        "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64},
                        generation={"max_new_tokens": 4}, prompts_per_step=4, minibatch_size=4)
    m = agent.learner.step()
    assert seen == [4] and 0.0 <= float(m["train/score"]) <= 4.0


def test_language_policy_is_a_plain_hf_folder(tmp_path, tiny_lm_agent):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    agent = tiny_lm_agent
    folder = rlkit2.save_language_policy(agent.learner, tmp_path / "policy")
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = tok(["<doc> bob likes jazz . <sum>"], return_tensors="pt", add_special_tokens=False)
    lm = agent.learner.policy.lm.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(**ids).logits, lm(**ids).logits)
    assert "value_head" not in str(list(model.state_dict()))  # training-only parts stay behind
    again, tok2 = rlkit2.load_language_policy(folder)
    assert tok2 is not None and type(again).__name__ == type(lm).__name__


def test_reward_model_saves_and_reloads_with_transformers_alone(tmp_path):
    pytest.importorskip("transformers")
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from rlkit2.rewards.reward_model import RewardModel
    from rlkit2.rewards.warm import WeightAveragedRewardModel

    torch.manual_seed(0)
    a = RewardModel.from_pretrained("minilm", pooling="cls", max_length=32)
    b = RewardModel.from_pretrained("minilm", pooling="cls", max_length=32)
    with torch.no_grad():
        b.head.weight.add_(0.5)
    warm = WeightAveragedRewardModel.from_models([a, b])
    folder = warm.save_pretrained(tmp_path / "warm")
    prompts, responses = ["how are you ?", "what is rl ?"], ["fine , thanks", "learning from reward"]
    with torch.no_grad():
        ours = warm(prompts, responses)
        tok, trunk = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
        enc = tok(prompts, responses, truncation="only_first", max_length=32, padding=True, return_tensors="pt")
        head = load_file(str(folder / "reward_head.safetensors"))
        theirs = trunk(**enc).last_hidden_state[:, 0] @ head["weight"].T + head["bias"]
    torch.testing.assert_close(ours, theirs.squeeze(-1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(head["weight"], (a.head.weight + b.head.weight).detach() / 2)
    reloaded = RewardModel.from_pretrained(str(folder))  # pooling and max_length come from the folder
    assert (reloaded.pooling, reloaded.max_length) == ("cls", 32)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.eval()(prompts, responses), ours)


def test_make_needs_env_and_replay():
    with pytest.raises(ConfigError, match="env"):
        rlkit2.make("td3_bc")
    with pytest.raises(ConfigError, match="replay"):
        rlkit2.make("td3_bc", EnvSpec(3, 2))
    assert dataclasses.is_dataclass(rlkit2.agent_config("qsarsa"))


# --------------------------------------------------------------------------- what the runners write


def test_lm_runner_writes_a_transformers_loadable_policy(tmp_path):
    pytest.importorskip("transformers")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlkit2.train import compose, run

    cfg = compose(["experiment=rlhf_toy", "trainer.total_steps=1", "trainer.eval_every=1", "trainer.eval_episodes=2",
                   "trainer.checkpoint_every=1", "trainer.progress=false", "trainer.plot=false",
                   "logger.console=false", "agent.model.hidden_size=32", "agent.prompts_per_step=4",
                   "agent.minibatch_size=4"])
    run(cfg, tmp_path)
    folder = tmp_path / "policy"
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    assert model.config.model_type == "gemma2" and model.config.hidden_size == 32
    ids = tok(["<doc> bob likes jazz . <sum>"], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        assert torch.isfinite(model(**ids).logits).all()


@pytest.mark.slow
def test_imitation_runner_writes_policy_pt_for_bc(tmp_path):
    pytest.importorskip("robosuite")
    from rlkit2.logging import JsonlLogger
    from rlkit2.run.imitation import run_imitation
    from rlkit2.train import compose

    cfg = compose(["agent=bc", "env=robosuite/lift", "env.num_demos=2", "env.horizon=80", "trainer.total_steps=10",
                   "trainer.eval_every=10", "trainer.eval_episodes=1", "trainer.log_every=5",
                   "trainer.checkpoint_every=10", "trainer.progress=false", "agent.hidden=[16,16]",
                   "agent.batch_size=16"])
    final = run_imitation(cfg, tmp_path, JsonlLogger(tmp_path))
    policy, info = rlkit2.load_policy(tmp_path, with_info=True)
    assert info["agent"] == "bc" and info["step"] == 10 and info["env"]["kind"] == "robosuite"
    again = rlkit2.evaluate(rlkit2.make_env(info["env"], seed=0), policy, 1, seed=cfg.seed + 10_000)
    assert again["eval/return"] == pytest.approx(final["eval/return"], abs=1e-6)
    # an imitation run's checkpoint rebuilds the same policy (checkpoint selection reads them)
    from_checkpoint, ckpt_info = rlkit2.load_policy(tmp_path / "checkpoints" / "step_000000010.pt", with_info=True)
    obs = rlkit2.make_env(info["env"], seed=0).reset(seed=0)[0]
    assert ckpt_info["step"] == 10
    np.testing.assert_array_equal(from_checkpoint(obs), policy(obs))
