"""Does a generated dataset depend on the CPU's float kernels? Collects the same rows under forced kernel choices.

    python experiments/bench/collection_determinism.py                       # hopper-v5-medium, 5k rows (~4 min)
    python experiments/bench/collection_determinism.py --dataset walker2d-v5-medium --transitions 50000

`rlkit2-data make` is deterministic from its seed on one machine; two collections of one dataset made on an AMD
and an Intel machine held other rows (experiments/offline/README.md). The libraries pick their float kernels
per CPU at run time: PyTorch's ATen (`ATEN_CPU_CAPABILITY`), oneDNN (`ONEDNN_MAX_CPU_ISA`), MKL (`MKL_CBWR`),
NumPy's SIMD loops (`NPY_DISABLE_CPU_FEATURES`) and OpenBLAS (`OPENBLAS_CORETYPE`). Each variant below forces
some of them to what an older or another vendor's CPU would run (plus other thread and worker counts) and
collects the same rows in a fresh process; a variant whose arrays hash differently from the default's shows a
kernel choice the data depend on. Each machine's rows are kept in the JSON beside the other machines' (keyed by
its host and CPU), so running this on another CPU tells whether the collections agree across machines.

Writes experiments/bench/results/collection_determinism.json and prints the table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make `experiments` importable
    sys.path.insert(0, str(ROOT))
OUT = ROOT / "experiments" / "bench" / "results" / "collection_determinism.json"
NO_AVX512 = "AVX512F,AVX512CD,AVX512_SKX,AVX512_CLX,AVX512_CNL,AVX512_ICL"
# name -> (environment, extra `rlkit2-data make` arguments)
VARIANTS: dict[str, tuple[dict[str, str], list[str]]] = {
    "default": ({}, []),
    "aten avx2": ({"ATEN_CPU_CAPABILITY": "avx2"}, []),
    "aten default (no SIMD)": ({"ATEN_CPU_CAPABILITY": "default"}, []),
    "onednn avx2": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, []),
    "mkl cbwr compatible": ({"MKL_CBWR": "COMPATIBLE"}, []),
    "numpy without avx512": ({"NPY_DISABLE_CPU_FEATURES": NO_AVX512}, []),
    "openblas zen": ({"OPENBLAS_CORETYPE": "Zen"}, []),
    "all at their oldest": ({"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                             "MKL_CBWR": "COMPATIBLE", "NPY_DISABLE_CPU_FEATURES": NO_AVX512,
                             "OPENBLAS_CORETYPE": "Prescott"}, []),
    "2 torch threads": ({"OMP_NUM_THREADS": "2"}, ["--threads", "2"]),
    "2 workers": ({}, ["--workers", "2"]),
}
ARRAYS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")


def default_sha256(rows: list[dict[str, Any]]) -> str:
    """The default variant's hash (the first row's when it was not run)."""
    return next((r["sha256"] for r in rows if r["variant"] == "default"), rows[0]["sha256"])


def arrays_sha256(path: Path) -> str:
    import h5py

    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        for k in ARRAYS:
            if k in f:
                h.update(k.encode())
                h.update(f[k][()].tobytes())
    return h.hexdigest()


# what a process under a variant's environment runs on: ATen's kernel level and NumPy's enabled SIMD features
PROBE = ("import json, torch, numpy; from numpy.core._multiarray_umath import __cpu_features__ as f; "
         "print(json.dumps({'aten': torch.backends.cpu.get_cpu_capability(), "
         "'numpy_avx512': bool(f.get('AVX512F'))}))")


def collect(dataset: str, transitions: int, env: dict[str, str], extra: list[str], tmp: Path) -> dict[str, Any]:
    """Collect `dataset` in a fresh process under `env`, into a data dir of its own (a shared one would hand
    every variant the first one's cached chunks); the sha256 of its arrays, the seconds it took and the kernels
    the process saw."""
    tmp.mkdir(parents=True)
    out = tmp / f"{dataset}.hdf5"
    cmd = [sys.executable, "-m", "rlkit2.data.cli", "make", dataset, "--transitions", str(transitions),
           "--workers", "1", "--out", str(out), "--data-dir", str(tmp), "--quiet", *extra]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **env}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"collection failed under {env} {extra}:\n{proc.stderr[-2000:]}")
    seconds = time.perf_counter() - t0
    probe = subprocess.run([sys.executable, "-c", PROBE], env=full_env, capture_output=True, text=True, check=True)
    return {"sha256": arrays_sha256(out), "seconds": round(seconds, 1), **json.loads(probe.stdout)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="hopper-v5-medium", help="a generated dataset name with shipped policies")
    p.add_argument("--transitions", type=int, default=5_000)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="NAME")
    p.add_argument("--out", default=str(OUT))
    a = p.parse_args(argv)
    if a.transitions <= 0:
        p.error(f"--transitions must be positive, got {a.transitions}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rlkit2-determinism-") as d:
        for name in a.variants:
            env, extra = VARIANTS[name]
            got = collect(a.dataset, a.transitions, env, extra, Path(d) / f"v{len(rows)}")
            rows.append({"variant": name, "env": env, "args": extra, **got})
            print(f"{name:24s} {got['sha256'][:16]}  {got['seconds']:6.1f} s  aten {got['aten']}", flush=True)
    from experiments import provenance

    info = provenance.machine()
    key = f"{a.dataset}/{a.transitions}"
    machine = f"{info['host']}: {info['cpu']}"  # one CPU model string can name different machines
    run: dict[str, Any] = {
        "cpu": info["cpu"], "cpus": info["cpus"], "platform": info["platform"],
        "versions": provenance.versions("mujoco"),
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%S"), "rows": rows,
        "all_equal": len({r["sha256"] for r in rows}) == 1,
    }
    from rlkit2.checkpoint import update_json

    def merge(data: dict[str, Any] | None) -> dict[str, Any]:
        data = data or {}
        data.setdefault(key, {})[machine] = run
        return data

    data = update_json(Path(a.out), merge)
    machines = data[key]
    default = default_sha256(rows)
    print(f"\n{key} on {machine}: " + ("all variants equal" if run["all_equal"] else "variants that differ from "
          "the default: " + ", ".join(r["variant"] for r in rows if r["sha256"] != default)))
    print("| machine | variants | arrays sha256 (default) | all equal |\n|---|---:|---|---|")
    for name, m in sorted(machines.items()):
        print(f"| {name} | {len(m['rows'])} | {default_sha256(m['rows'])[:16]} | {m['all_equal']} |")
    defaults = {default_sha256(m["rows"]) for m in machines.values()}
    if len(machines) > 1:
        print(f"across the {len(machines)} CPUs: {'the same rows' if len(defaults) == 1 else 'OTHER rows'}")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
