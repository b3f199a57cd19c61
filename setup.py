"""Package discovery: `envs/` and `conf/` live at the top of the repo but install as
`rlkit2.envs` and `rlkit2.conf` (docs/architecture.md), so no top-level `envs` lands in site-packages."""

from setuptools import find_packages, setup


def _mapped(prefix: str, folder: str) -> list[str]:
    return [prefix] + [f"{prefix}.{p}" for p in find_packages(folder)]


setup(
    packages=[*find_packages(include=["rlkit2", "rlkit2.*"]), *_mapped("rlkit2.envs", "envs"),
              *_mapped("rlkit2.conf", "conf")],
    package_dir={"rlkit2.envs": "envs", "rlkit2.conf": "conf"},
)
