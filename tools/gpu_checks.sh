#!/usr/bin/env bash
# The GPU checks a CPU-only CI cannot make, as one script (at most 8 minutes on an H100/H200):
# the timing paths (sync vs CUDA events vs no sync; allocated vs reserved), then the best
# configuration per framework for resnet50 and vit_b_16 in bfloat16 (img/s and MFU, one
# table), and on request (WITH_TRAIN=1, WITH_PARITY=1) the train step and CUDA parity.
# The matrix of the first landing and the fidelity check: tools/fidelity.py --device cuda.
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

step "timing paths: sync honesty, allocated vs reserved"
timeout 90 "$py" tools/cuda_checks.py --model resnet50 --batch-size 32 --json "$out/cuda_checks.json"

step "best configuration per framework: resnet50 and vit_b_16, bfloat16, batch ${BEST_BATCH:-256}"
timeout "${BEST_TIMEOUT:-300}" "$py" -m pytest benchmarks -p no:cacheprovider --device cuda --model resnet50 vit_b_16 \
    --batch-sizes "${BEST_BATCH:-256}" --dtype bfloat16 --rounds 30 --warmup 5 \
    --config eager channels_last channels_last-compile xla-autotune ${BEST_EXTRA:-} \
    --benchmark-json "$out/gpu_configs.json" 2>&1 | tee "$out/configs.log" | sed -n '/visionbench: throughput/,/^$/p;/passed\|failed\|error/p'
"$py" tools/best_configs.py "$out/gpu_configs.json" | tee "$out/best_configs.md"

if [ -n "${WITH_TRAIN:-}" ]; then
    step "train step: resnet50 bfloat16 batch 128, both frameworks"
    timeout 180 "$py" -m pytest benchmarks -p no:cacheprovider --device cuda --model resnet50 --mode train \
        --batch-sizes 128 --dtype bfloat16 --rounds 20 --warmup 3 --benchmark-json "$out/gpu_train.json" 2>&1 \
        | tee "$out/train.log" | sed -n '/visionbench: throughput/,/^$/p;/passed\|failed\|error/p'
fi

if [ -n "${WITH_PARITY:-}" ]; then
    step "parity on cuda: one tiny variant per family, every dtype"
    timeout 150 "$py" -m pytest validation/test_parity.py -p no:cacheprovider -q -k "cuda and tiny" 2>&1 | tail -15 | tee "$out/parity.log"
fi
step "done"
