#!/bin/bash
# Does one of MKL's code branches reproduce, on this machine, a collection made on another CPU?
#
#   bash experiments/bench/collection_mkl_branches.sh <checkout> <out dir> AVX2 COMPATIBLE AVX
#
# <checkout>: a checkout of the code that made the collection (the AMD and Intel hopper-v5-medium collections of
# the offline grid were made by the earlier, row-chunked collection: commit 5c276ce); each MKL_CBWR branch
# collects hopper-v5-medium (1M rows, one process, one thread) into <out dir>/<branch>/ and appends its rows'
# mean episode return to <out dir>/mkl_branches.jsonl. The AMD EPYC collection's is 1172.3562321878262, this
# Intel Xeon's default 1166.9709178878072 (experiments/offline/results/*.json, `data`).
set -euo pipefail
CHECKOUT=$(cd "$1" && pwd); OUT=$(mkdir -p "$2" && cd "$2" && pwd); shift 2
PY=${PYTHON:-$(pwd)/.venv/bin/python}
cd "$CHECKOUT"  # python -m runs the checkout's rlkit2 (the current directory comes first on sys.path)
for b in "$@"; do
  mkdir -p "$OUT/$b"
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MKL_CBWR=$b "$PY" -m rlkit2.data.cli make hopper-v5-medium \
    --data-dir "$OUT/$b" --out "$OUT/$b/hopper-v5-medium.hdf5" --quiet
  "$PY" -c "
import json, platform
from rlkit2.data.d4rl import generation_metadata
md = generation_metadata('$OUT/$b/hopper-v5-medium.hdf5')
cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '?')
print(json.dumps({'mkl_cbwr': '$b', 'dataset': 'hopper-v5-medium', 'cpu': cpu, 'host': platform.node(),
                  'dataset_mean_episode_return': md['dataset_mean_episode_return'],
                  'generation_seconds': round(md['generation_seconds'], 1)}))" | tee -a "$OUT/mkl_branches.jsonl"
done
