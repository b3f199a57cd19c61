#!/usr/bin/env bash
# The GPU measurements, in one pass on a machine with a CUDA device (under 3 minutes on one H200, measured):
#   bash experiments/bench/gpu_check.sh [OUT_DIR]        # default experiments/bench/results/gpu
# 1. tests/robustness/test_cuda.py: learners on the GPU track the CPU ones, checkpoints move between devices,
#    offline runs resume bit for bit on the GPU (mid log window and after kill -9), a GPU-trained policy loads
#    on the CPU;
# 2. offline learner throughput on the GPU (experiments/bench/offline.py --device cuda);
# 3. stacked seeds on the GPU (experiments/bench/stacked_seeds.py --device cuda): S TD3+BC seeds in one process;
# 4. ppo_lm at ~110M parameters: fp32, bf16 with fp32 master weights, LoRA, gradient checkpointing
#    (experiments/bench/lm_scale.py --size full --device cuda).
# LM_PYTHONPATH, when set, replaces PYTHONPATH for step 4 (a GPU image whose scipy/transformers need a newer
# NumPy than the one the control stack is tested with). Each step has its own time limit and the steps do not
# depend on each other; the results land in OUT_DIR (the JSON and tables also where each bench writes them).
set -u
out=${1:-experiments/bench/results/gpu}
steps=${GPU_CHECK_STEPS:-1 2 3 4}  # a subset, e.g. GPU_CHECK_STEPS="1 4"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import sys, torch, numpy; print('python', sys.version.split()[0], 'torch', torch.__version__,
'cuda', torch.version.cuda, 'numpy', numpy.__version__, 'gpu', torch.cuda.get_device_name(0))"
  nproc; date -u; } > "$out/gpu.txt" 2>&1
cat "$out/gpu.txt"

if [[ " $steps " == *" 1 "* ]]; then
echo "== 1. tests/robustness/test_cuda.py"
timeout 240 python3 -m pytest -q -p no:cacheprovider -rA tests/robustness/test_cuda.py > "$out/test_cuda.log" 2>&1
echo "pytest exit $?" >> "$out/test_cuda.log"
tail -n 25 "$out/test_cuda.log"
fi

if [[ " $steps " == *" 2 "* ]]; then
echo "== 2. offline learner throughput"
timeout 150 python3 experiments/bench/offline.py --device cuda --no-d3rlpy --threads 1 --rounds 3 --updates 400 \
  && cp experiments/offline/results/throughput_cuda.json experiments/offline/results/throughput_cuda.md "$out/"
fi

if [[ " $steps " == *" 3 "* ]]; then
echo "== 3. stacked seeds"
timeout 150 python3 experiments/bench/stacked_seeds.py --device cuda --seeds 1 5 20 --rounds 3 --updates 200 \
  && cp experiments/bench/results/stacked_seeds_cuda.json "$out/"
fi

if [[ " $steps " == *" 4 "* ]]; then
echo "== 4. ppo_lm at ~110M parameters"
PYTHONPATH=${LM_PYTHONPATH:-${PYTHONPATH:-}} timeout 240 python3 experiments/bench/lm_scale.py --size full --device cuda --threads 8 --timeout 60 \
  --settings fp32,bf16,bf16-lora,bf16-lora-gc \
  && cp experiments/bench/results/lm_scale_full_cuda.json experiments/bench/results/lm_scale_full_cuda.md "$out/"
fi
ls -la "$out"
