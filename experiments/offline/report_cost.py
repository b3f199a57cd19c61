"""The grid report's "Cost and provenance" section: how long the runs took, on which machines and library
versions, and which collection of each dataset they trained on (two collections made with the same settings on
different CPUs hold different rows; `collection` tells them apart by the rows' mean episode return)."""

from __future__ import annotations

import datetime
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np


def collection(row: dict[str, Any]) -> str:
    """The key of the collection a grid row trained on (its `data`: generation settings and mean return)."""
    return json.dumps(row.get("data") or {}, sort_keys=True)


def _hours(s: float) -> str:
    return f"{s / 3600:.2f} h" if s >= 360 else f"{s:.0f} s"


def covered_seconds(sessions: Sequence[dict[str, Any]]) -> float:
    """Wall-clock time covered by the sittings, each [started, started + seconds]: sittings that ran side by
    side (shards, cores) count once."""
    spans = sorted((t, t + float(s["seconds"])) for s in sessions
                   for t in [datetime.datetime.fromisoformat(s["started"]).timestamp()])
    total, end = 0.0, float("-inf")
    for a, b in spans:
        total += max(0.0, b - max(a, end))
        end = max(end, b)
    return total


def cost_and_provenance(data: dict[str, Any], agents: list[str]) -> list[str]:
    runs = data["runs"]
    walls = [r["wall_s"] for r in runs if r.get("wall_s")]
    sessions = data.get("sessions", [])
    lines = ["## Cost and provenance", "",
             f"- runs: {len(runs)}; training time summed over runs: {_hours(sum(walls))} "
             "(each run's loop time, rebuilt from its logged throughput windows, over all its sittings)",
             f"- elapsed grid time: {_hours(covered_seconds(sessions))} of wall clock covered by {len(sessions)} "
             f"sitting(s) (side by side counted once; summed over sittings: "
             f"{_hours(sum(s['seconds'] for s in sessions))}; jobs at once per sitting: "
             f"{', '.join(sorted({str(s['jobs']) for s in sessions})) or '—'})", "",
             "| agent | runs | updates/s (median) | training time |", "|---|---:|---:|---:|"]
    for a in agents:
        rs = [r for r in runs if r["agent"] == a]
        ups = [r["updates_per_s"] for r in rs if r.get("updates_per_s")]
        lines.append(f"| {a} | {len(rs)} | {f'{np.median(ups):.1f}' if ups else '—'} | "
                     f"{_hours(sum(r['wall_s'] for r in rs if r.get('wall_s')))} |")
    machines = sorted({json.dumps(r["machine"], sort_keys=True) for r in runs if r.get("machine")})
    vers = sorted({json.dumps(r["versions"], sort_keys=True) for r in runs if r.get("versions")})
    lines += ["", "Machines:"]
    for m in machines:
        d = json.loads(m)
        lines.append(f"- {d.get('host')}: {d.get('cpu')}, {d.get('cpus')} CPUs, {d.get('platform')}, "
                     f"Python {d.get('python')}")
    lines += ["", "Library versions:"]
    for v in vers:
        lines.append("- " + ", ".join(f"{k} {x}" for k, x in json.loads(v).items()))
    lines += ["", "Data (the collection each run trained on: `--transitions` (medium-replay has as many rows as env "
                  "steps up to the medium snapshot instead), seed, behaviour policies, chunking, and the rows' "
                  "mean episode return, which tells apart two collections made with the same settings on different "
                  "CPUs):"]
    collections = Counter((r["dataset"], collection(r)) for r in runs)
    for (d, k), n in sorted(collections.items()):
        mixed = sum(1 for (e, _) in collections if e == d) > 1
        lines.append(f"- {d}: {_collection(json.loads(k))} ({n} runs)"
                     + (" — runs of one dataset trained on different collections" if mixed else ""))
    return [*lines, ""]


def _collection(p: dict[str, Any]) -> str:
    """A grid row's `data` (its dataset's generation settings) in words."""
    if not p or "error" in p:
        return "not recorded"
    chunks = f"chunks of {p['chunk_episodes']} episodes" if p.get("chunk_episodes") else \
        "chunked by rows (the earlier collection)"
    ret = p.get("dataset_mean_episode_return")
    return (f"--transitions {p.get('transitions')}, seed {p.get('seed')}, policies sha256 "
            f"{str(p.get('behaviour_policies_sha256'))[:12]}, {chunks}, "
            + (f"mean episode return {ret:.2f}" if isinstance(ret, int | float)
               else "mean episode return not recorded"))
