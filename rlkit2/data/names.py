"""Dataset names and where their files live.

Two kinds of dataset names, never mixed up:

- D4RL names (`hopper-medium-v2`) name D4RL's own files only: found in rlkit2's cache, D4RL's cache
  (`~/.d4rl/datasets`) or given as a path. A file there that rlkit2 generated is refused.
- generated names (`hopper-v5-medium`: `<env>-v5-<kind>`) name datasets `rlkit2-data make` produced
  here on the Gymnasium v5 envs with D4RL's recipe; they live in rlkit2's cache.

Both resolve to Gymnasium MuJoCo v5 ids (`Hopper-v5`) with `resolve_env_id`, and to a file with
`resolve_dataset_path`; `parse_dataset_name` refuses anything else with examples of both kinds.
Reading and writing the files: `rlkit2.data.d4rl`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from rlkit2.core import ConfigError, DataError
from rlkit2.data.d4rl import GENERATION_METADATA_KEYS, generation_metadata

D4RL_ENVS: dict[str, str] = {"halfcheetah": "HalfCheetah-v5", "hopper": "Hopper-v5", "walker2d": "Walker2d-v5"}
D4RL_KINDS: tuple[str, ...] = ("random", "medium", "medium-replay", "medium-expert", "expert")
_D4RL_RE = re.compile(r"^(?P<env>[a-z0-9]+)-(?P<kind>[a-z]+(?:-[a-z]+)?)-v(?P<version>\d+)$")
# generated datasets: `<env>-v5-<kind>` (the Gymnasium env version they were collected on, then the kind)
GENERATED_VERSION = "v5"
_GENERATED_RE = re.compile(r"^(?P<env>[a-z0-9]+)-v5-(?P<kind>[a-z]+(?:-[a-z]+)?)$")


@dataclasses.dataclass(frozen=True)
class D4RLName:
    env: str  # "hopper"
    kind: str  # "medium-replay"
    version: int  # 2

    @property
    def name(self) -> str:
        return f"{self.env}-{self.kind}-v{self.version}"

    @property
    def gym_id(self) -> str:
        return D4RL_ENVS[self.env]


@dataclasses.dataclass(frozen=True)
class GeneratedName:
    """A dataset `rlkit2-data make` generates here: `hopper-v5-medium` (D4RL's recipe on Gymnasium's Hopper-v5)."""

    env: str  # "hopper"
    kind: str  # "medium-replay"

    @property
    def name(self) -> str:
        return f"{self.env}-{GENERATED_VERSION}-{self.kind}"

    @property
    def gym_id(self) -> str:
        return D4RL_ENVS[self.env]

    @property
    def d4rl_counterpart(self) -> str:
        """The D4RL dataset this one imitates (`hopper-medium-v2`): the recipe, not the file."""
        return f"{self.env}-{self.kind}-v2"


def generated_name(env: str, kind: str) -> str:
    """("hopper", "medium") -> "hopper-v5-medium"."""
    return GeneratedName(env, kind).name


def dataset_name_help() -> str:
    """The two kinds of dataset names, with examples (for error messages)."""
    envs, kinds = "|".join(D4RL_ENVS), "|".join(D4RL_KINDS)
    return (f"D4RL's own files are named <env>-<kind>-v2 (e.g. hopper-medium-v2, walker2d-medium-replay-v2; "
            f"put them in {d4rl_data_dir()} or {rlkit2_data_dir()}, or give a path); datasets generated here by "
            f"`rlkit2-data make` are named <env>-v5-<kind> (e.g. hopper-v5-medium, walker2d-v5-medium-replay); "
            f"env is {envs}, kind is {kinds}")


def parse_d4rl_name(name: str) -> D4RLName | None:
    """`hopper-medium-replay-v2` -> D4RLName; None when `name` does not look like a D4RL name.

    A name shaped like a D4RL name but naming an unknown environment or kind raises ConfigError
    (so `ant-medium-v2` fails loudly instead of being passed to Gymnasium).
    """
    m = _D4RL_RE.match(name.strip())
    if m is None:
        return None
    env, kind = m.group("env"), m.group("kind")
    if env not in D4RL_ENVS or kind not in D4RL_KINDS:
        raise ConfigError(f"'{name}' looks like a D4RL dataset name but is not supported. {dataset_name_help()}")
    return D4RLName(env, kind, int(m.group("version")))


def parse_generated_name(name: str) -> GeneratedName | None:
    """`hopper-v5-medium-replay` -> GeneratedName; None when `name` does not look like a generated name.

    A name shaped like one but naming an unknown environment or kind raises ConfigError.
    """
    m = _GENERATED_RE.match(name.strip())
    if m is None:
        return None
    env, kind = m.group("env"), m.group("kind")
    if env not in D4RL_ENVS or kind not in D4RL_KINDS:
        raise ConfigError(f"'{name}' looks like a generated dataset name but is not supported. "
                          f"{dataset_name_help()}")
    return GeneratedName(env, kind)


def parse_dataset_name(name: str) -> D4RLName | GeneratedName:
    """A D4RL name or a generated name -> its parsed form; anything else is a ConfigError listing both kinds."""
    parsed: D4RLName | GeneratedName | None = parse_d4rl_name(name)
    if parsed is None:
        parsed = parse_generated_name(name)
    if parsed is None:
        raise ConfigError(f"'{name}' is not a dataset name. {dataset_name_help()}")
    return parsed


def resolve_env_id(name: str) -> tuple[str, str | None]:
    """A Gymnasium id or a dataset name -> (Gymnasium id, dataset name or None).

    `hopper-medium-v2` -> ("Hopper-v5", "hopper-medium-v2"); `hopper-v5-medium` -> ("Hopper-v5",
    "hopper-v5-medium"); `Hopper-v5` -> ("Hopper-v5", None). D4RL's envs were mujoco-py `-v2`; the v5
    envs are their maintained Gymnasium successors (same observation and action spaces for these three).
    """
    parsed: D4RLName | GeneratedName | None = parse_d4rl_name(name)
    if parsed is None:
        parsed = parse_generated_name(name)
    if parsed is None:
        return name, None
    return parsed.gym_id, parsed.name


def env_family(gym_id: str) -> str | None:
    """`Hopper-v5` -> "hopper" (the key of the reference-return tables); None for other envs."""
    base = gym_id.split("-v")[0].lower()
    return base if base in D4RL_ENVS else None


# --------------------------------------------------------------------------- where files live


def rlkit2_data_dir() -> Path:
    """rlkit2's dataset cache: $RLKIT2_DATA_DIR, default ~/.cache/rlkit2/datasets."""
    return Path(os.environ.get("RLKIT2_DATA_DIR") or Path.home() / ".cache" / "rlkit2" / "datasets").expanduser()


def d4rl_data_dir() -> Path:
    """D4RL's own cache: $D4RL_DATASET_DIR, default ~/.d4rl/datasets."""
    return Path(os.environ.get("D4RL_DATASET_DIR") or Path.home() / ".d4rl" / "datasets").expanduser()


def dataset_candidates(name: str) -> list[Path]:
    """Files a dataset name may live in, in search order.

    A D4RL name: rlkit2's cache (`<name>.hdf5`), then D4RL's cache, whose downloader keeps the URL's
    basename, which spells the kind with underscores (`hopper_medium_replay-v2.hdf5`). A generated name:
    rlkit2's cache only (`hopper-v5-medium.hdf5`).
    """
    parsed = parse_dataset_name(name)
    if isinstance(parsed, GeneratedName):
        return [rlkit2_data_dir() / f"{parsed.name}.hdf5"]
    d4rl_base = f"{parsed.env}_{parsed.kind.replace('-', '_')}-v{parsed.version}.hdf5"
    return [rlkit2_data_dir() / f"{parsed.name}.hdf5", d4rl_data_dir() / d4rl_base, d4rl_data_dir() / f"{name}.hdf5"]


def make_command(name: str, transitions: int = 1_000_000) -> str:
    return f"rlkit2-data make {name} --transitions {transitions}"


def _refuse_generated(path: Path, d4rl: D4RLName) -> None:
    """A file found under D4RL's name must be D4RL's: one rlkit2 generated is refused, naming its own name."""
    md = generation_metadata(path)
    if not md:
        return
    gen = generated_name(d4rl.env, d4rl.kind)
    settings = " ".join(f"--{flag} {md[key]}" for key, flag in (("transitions", "transitions"),
                                                              ("train_steps", "train-steps"), ("seed", "seed"))
                        if key in md)
    hidden = f" --hidden {md['sac_hidden']}" if md.get("sac_hidden") not in (None, "", "256x256") else ""
    cmd = f"rlkit2-data make {gen} {settings}{hidden}".rstrip()
    raise DataError(
        f"{path}: found under D4RL's name '{d4rl.name}', but it is generated data (made here by rlkit2-data on "
        f"{md.get('env_id', d4rl.gym_id)} with {md.get('behaviour_agent', 'rlkit2')} behaviour policies; its "
        f"metadata has {', '.join(k for k in GENERATION_METADATA_KEYS if k in md)}), not D4RL's file. Use the "
        f"generated name '{gen}' (env.id={gen} or env.dataset={gen}); regenerate it under that name with "
        f"`{cmd}` (the work dir's training and collected chunks are reused), then remove {path}."
    )


def resolve_dataset_path(name: str) -> Path:
    """A dataset name -> the file holding it, or DataError saying where it was looked for and how to get it.

    A D4RL name resolves only to D4RL's own files: a generated file found under that name is refused.
    """
    parsed = parse_dataset_name(name)
    candidates = dataset_candidates(name)
    for p in candidates:
        if p.is_file():
            if isinstance(parsed, D4RLName):
                _refuse_generated(p, parsed)
            return p
    looked = ", ".join(str(p) for p in candidates)
    if isinstance(parsed, GeneratedName):
        raise DataError(
            f"generated dataset '{name}' not found; looked in: {looked}. Make it with `{make_command(name)}` "
            f"(add e.g. `--transitions 100000 --train-steps 100000` for a scaled-down one; it is written to "
            f"{candidates[0]}), or point env.dataset at an existing HDF5 file."
        )
    gen = generated_name(parsed.env, parsed.kind)
    raise DataError(
        f"D4RL dataset '{name}' not found; looked in: {looked}. The original D4RL files cannot be downloaded "
        f"here: put D4RL's file in {d4rl_data_dir()} (as {candidates[1].name}) or point env.dataset at it. To use "
        f"a dataset generated here with D4RL's recipe instead, make `{gen}` with `{make_command(gen)}` and "
        f"set env.id={gen}."
    )
