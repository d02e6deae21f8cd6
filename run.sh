#!/usr/bin/env bash
# visionbench in one command, on a fresh machine.
#   bash run.sh bench [pytest options]   set up, then run the default benchmark matrix (autosaved)
#   bash run.sh test  [pytest options]   set up, then run the suite's own tests
#   bash run.sh setup                    only set up .venv (and chromium, for the visualizer's browser tests)
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

# The visualizer's browser tests drive Debian's chromium through Playwright's API (Playwright's
# own browser download needs network and is never used). Installed with apt where apt works
# (root, or password-less sudo); elsewhere install Chromium yourself and set VISUALIZER_CHROMIUM.
install_chromium() {
    if [ -n "${VISUALIZER_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
        return 0
    fi
    local sudo=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo="sudo -n"
    fi
    if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; }; then
        echo "visionbench: installing chromium with apt-get (the visualizer's browser tests)" >&2
        if $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null; then
            return 0
        fi
    fi
    echo "visionbench: no chromium here and apt-get could not install it: the visualizer's browser tests skip" \
         "(CI fails them); install Chromium and set VISUALIZER_CHROMIUM=/path/to/chromium" >&2
}

case "$command" in
    setup) setup; install_chromium ;;
    bench) setup; exec "$venv/bin/python" -m pytest benchmarks --benchmark-autosave "$@" ;;
    test)
        setup; install_chromium
        if [ $# -gt 0 ]; then exec "$venv/bin/python" -m pytest "$@"; fi
        # The whole suite: in parallel on every core (pytest-xdist) except the tests that
        # assert on real timings, which then run alone so no other test skews them.
        rc=0
        "$venv/bin/python" -m pytest -n "${VISIONBENCH_TEST_WORKERS:-0}" -m "not timing" || rc=$?
        "$venv/bin/python" -m pytest -m timing || rc=$?
        exit "$rc" ;;
    *) echo "usage: bash run.sh {bench|test|setup} [pytest options]" >&2; exit 2 ;;
esac
