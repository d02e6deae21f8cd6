#!/usr/bin/env bash
# The GPU checks a CPU-only CI cannot make, as one short script (about 6 minutes on an H100):
# the benchmark matrix on CUDA (float32 exact and bfloat16), CUDA parity tiers, the timing
# paths (sync vs CUDA events vs no sync; allocated vs reserved), and harness fidelity.
# Results go to $OUT (default ./gpu-out). Run from the repository root on a GPU machine
# whose python3 already has torch, torchvision, jax[cuda], flax and pytest-benchmark.
set -uo pipefail
out="${OUT:-gpu-out}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
py="${PYTHON:-python3}"
step() { echo; echo "=== $* ($(date +%T))"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$py" -c "import torch, torchvision, jax, flax; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'tv', torchvision.__version__, 'jax', jax.__version__, 'flax', flax.__version__, jax.devices())"

step "benchmark matrix on cuda"
timeout 240 "$py" -m pytest benchmarks -p no:cacheprovider --device cuda --model resnet50 vit_b_16 \
    --batch-sizes 1 8 32 --dtype float32 bfloat16 --rounds 20 --warmup 3 \
    --benchmark-json "$out/gpu_matrix.json" 2>&1 | tee "$out/matrix.log" | sed -n '/visionbench: throughput/,/^$/p;/passed\|failed\|error/p'

step "parity on cuda"
timeout 150 "$py" -m pytest validation -p no:cacheprovider -q -k cuda 2>&1 | tail -15 | tee "$out/parity.log"

step "timing paths"
timeout 90 "$py" tools/cuda_checks.py --model resnet50 --batch-size 32 --json "$out/cuda_checks.json"

step "fidelity: record vs hand-written loop"
timeout 200 "$py" tools/fidelity.py --device cuda --model resnet50 vit_b_16 --batch-sizes 32 --repeats 2 --rounds 30 \
    2>&1 | tee "$out/fidelity.md"
step "done"
