"""`trainer.video=true`: the first episode of every evaluation as an MP4 in the run dir, sent to the loggers;
refused where there is nothing to film. A renderable toy env stands in for MuJoCo (which needs EGL/OSMesa)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rlkit2.core import ConfigError
from rlkit2.train import run
from rlkit2.video import EpisodeRecorder
from tests.helpers import compose_config

cv2 = pytest.importorskip("cv2")


class Dot(gym.Env):
    """A point on a line: action moves it; 12-step episodes; renders a 24x32 frame with the dot as a column."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None):
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.x, self.t = 0.0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = float(self.np_random.uniform(-0.5, 0.5)), 0
        return np.array([self.x, 0.0], np.float32), {}

    def step(self, action):
        self.x = float(np.clip(self.x + 0.1 * float(np.asarray(action)[0]), -1, 1))
        self.t += 1
        return np.array([self.x, self.t / 12], np.float32), -abs(self.x), False, self.t >= 12, {}

    def render(self):
        frame = np.zeros((24, 32, 3), np.uint8)
        frame[:, int((self.x + 1) / 2 * 31)] = (255, 255, 255)
        return frame


gym.register("rlkit2test/Dot-v0", entry_point=Dot, max_episode_steps=12)


def _frames(path) -> int:
    cap, n = cv2.VideoCapture(str(path)), 0
    while cap.read()[0]:
        n += 1
    return n


def test_evaluation_videos_are_written_and_logged(tmp_path, monkeypatch):
    from rlkit2.logging import MultiLogger

    seen = []
    monkeypatch.setattr(MultiLogger, "video", lambda self, key, path, step: seen.append((key, path.name, step)))
    cfg = compose_config(["agent=td3", "env=hopper", "env.id=rlkit2test/Dot-v0", "env.max_episode_steps=12",
                          "agent.hidden=[8]", "agent.batch_size=8", "trainer.total_steps=48",
                          "trainer.learning_starts=12", "trainer.eval_every=24", "trainer.eval_episodes=2",
                          "trainer.checkpoint_every=24", "trainer.log_every=24", "trainer.video=true",
                          "trainer.threads=1", "trainer.progress=false", "trainer.plot=false",
                          "logger.console=false"])
    run(cfg, tmp_path / "run")
    videos = sorted((tmp_path / "run" / "videos").glob("*.mp4"))
    assert [v.name for v in videos] == ["step_000000024.mp4", "step_000000048.mp4"]
    assert all(_frames(v) == 13 for v in videos)  # the reset frame and 12 steps: one episode, not two
    assert not list((tmp_path / "run" / "videos").glob(".*"))  # no temp files left
    assert seen == [("eval/video", "step_000000024.mp4", 24), ("eval/video", "step_000000048.mp4", 48)]


def test_a_cut_episode_leaves_no_video_and_non_rendering_envs_are_refused(tmp_path):
    rec = EpisodeRecorder(Dot(render_mode="rgb_array"))
    rec.arm(tmp_path / "v.mp4")
    rec.reset(seed=0)
    rec.step(np.zeros(1, np.float32))
    rec.reset(seed=1)  # the filmed episode was cut: nothing half-written stays
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="renders 'rgb_array'"):
        EpisodeRecorder(Dot())
    with pytest.raises(ConfigError, match="evaluation is off"):
        run(compose_config(["agent=td3", "trainer.video=true", "trainer.eval_every=0"]), tmp_path / "r")
    with pytest.raises(ConfigError, match="no frames to record"):
        run(compose_config(["agent=ppo_lm", "env=text_synthetic", "trainer.video=true", "trainer.total_steps=1"]),
            tmp_path / "lm")
