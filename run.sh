#!/usr/bin/env bash
# visionbench in one command, on a fresh machine.
#   bash run.sh bench [pytest options]   set up, then run the default benchmark matrix (autosaved)
#   bash run.sh test  [pytest options]   set up, then run the suite's own tests
#   bash run.sh setup                    only set up .venv
# VISIONBENCH_VENV picks the virtual environment (default: .venv beside this file).
# VISIONBENCH_JAX_EXTRA picks JAX's accelerator extra, e.g. cuda12 or cuda13; by default it
# is cuda12 when nvidia-smi sees a GPU and none (CPU JAX) otherwise.
set -euo pipefail
cd "$(dirname "$0")"

venv="${VISIONBENCH_VENV:-.venv}"
python="${PYTHON:-python3}"
command="${1:-}"
shift || true

setup() {
    if [ ! -x "$venv/bin/python" ]; then
        echo "visionbench: creating $venv with $($python --version)" >&2
        "$python" -m venv "$venv"
    fi
    local extra="${VISIONBENCH_JAX_EXTRA-}"
    if [ -z "${VISIONBENCH_JAX_EXTRA+set}" ] && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        extra=cuda12
    fi
    # Reinstall only when the requirements changed: a stamp holds their hash.
    local stamp="$venv/.visionbench-installed"
    local want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1)-${extra}"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "visionbench: installing dependencies into $venv (a few minutes the first time)" >&2
        "$venv/bin/python" -m pip install --quiet --upgrade pip
        "$venv/bin/python" -m pip install --quiet -e ".[dev]"
        if [ -n "$extra" ]; then
            "$venv/bin/python" -m pip install --quiet "jax[$extra]"
        fi
        echo "$want" > "$stamp"
    fi
}

case "$command" in
    setup) setup ;;
    bench) setup; exec "$venv/bin/python" -m pytest benchmarks --benchmark-autosave "$@" ;;
    test) setup; exec "$venv/bin/python" -m pytest "$@" ;;
    *) echo "usage: bash run.sh {bench|test|setup} [pytest options]" >&2; exit 2 ;;
esac
