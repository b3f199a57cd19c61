"""Evaluation rollout videos (`trainer.video=true`): the first episode of every evaluation, as an MP4 in the run
dir (`videos/step_<step>.mp4`), also sent to wandb when it logs.

`EpisodeRecorder` wraps the evaluation env (made with `render_mode="rgb_array"`); `arm(path)` records the next
episode, from its reset to its end, frame by frame into the file (OpenCV's MPEG-4 writer: no ffmpeg binary
needed, and frames are streamed to disk, never held in memory). The file appears only when the episode is
complete. Rendering MuJoCo offscreen needs EGL or OSMesa on a headless machine (MUJOCO_GL=egl|osmesa).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlkit2.core import ConfigError

VIDEO_DIR = "videos"


def video_path(run_dir: str | os.PathLike[str], step: int) -> Path:
    return Path(run_dir) / VIDEO_DIR / f"step_{int(step):09d}.mp4"


class EpisodeRecorder(gym.Wrapper):
    """Passes everything through; after `arm(path)`, writes the next episode's rendered frames to `path`."""

    def __init__(self, env: gym.Env, fps: float | None = None):
        super().__init__(env)
        if getattr(env, "render_mode", None) != "rgb_array":
            raise ConfigError(f"trainer.video=true needs an env that renders 'rgb_array' frames; this one's "
                              f"render_mode is {getattr(env, 'render_mode', None)!r}")
        try:
            import cv2  # noqa: F401 - needed at the first frame; refused now rather than mid-run
        except ImportError as e:
            raise ConfigError("trainer.video=true writes MP4s with OpenCV: pip install 'rlkit2[video]'") from e
        self.fps = float(fps or env.metadata.get("render_fps") or 30)
        self._armed: Path | None = None
        self._writer: Any = None
        self._tmp: Path | None = None
        self.frames = 0
        self.last_video: Path | None = None

    def arm(self, path: str | os.PathLike[str]) -> None:
        self._armed = Path(path)

    def reset(self, **kwargs: Any) -> Any:
        self._abandon()
        out = self.env.reset(**kwargs)
        if self._armed is not None:
            self._open(self._armed)
            self._armed = None
            self._frame()
        return out

    def step(self, action: Any) -> Any:
        out = self.env.step(action)
        if self._writer is not None:
            self._frame()
            if out[2] or out[3]:
                self._close()
        return out

    def close(self) -> None:
        self._abandon()
        super().close()

    # ------------------------------------------------------------------ the file
    def _open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        self._target, self._writer, self.frames = path, None, 0

    def _frame(self) -> None:
        import cv2

        frame = np.asarray(self.env.render())
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ConfigError(f"trainer.video: render() gave an array of shape {frame.shape}, expected (H, W, 3)")
        if self._writer is None:
            h, w = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter.fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise ConfigError(f"trainer.video: OpenCV cannot write {self._tmp}")
        self._writer.write(np.ascontiguousarray(frame[..., ::-1]).astype(np.uint8))  # OpenCV wants BGR
        self.frames += 1

    def _close(self) -> None:
        self._writer.release()
        self._writer = None
        assert self._tmp is not None
        os.replace(self._tmp, self._target)
        self.last_video = self._target

    def _abandon(self) -> None:
        """An episode cut off before its end (a reset mid-episode, close): no half-written video is left."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()


def evaluation_env(env_cfg: Any, seed: int, trainer: Any) -> Any:
    """The env evaluations run in: wrapped in an `EpisodeRecorder` (rendering rgb_array) when `trainer.video`."""
    from rlkit2.registry import make_env

    if not bool(getattr(trainer, "video", False)):
        return make_env(env_cfg, seed)
    return EpisodeRecorder(make_env(env_cfg, seed, render_mode="rgb_array"))

