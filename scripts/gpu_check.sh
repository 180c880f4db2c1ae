#!/usr/bin/env bash
# The GPU check (issue 28, item 14), for a maintainer on a machine with a CUDA GPU, in the GPU
# environment of the README (`make venv GPU=cu130`). Every shipped real model found in the local
# Hugging Face cache (others are skipped; nothing is downloaded: `hf download ...` first) is
# loaded in its spec's own dtype, in a child process under its own time limit (its share of
# what is left of a 540 s budget: a model still running at its limit is killed, reported
# "timed out after N s" with the steps it finished, and the check goes on), and measured:
# 16 sample images x 2 variants at batch 1 and at the batch size `auto` settles on, one
# likelihood batch, one description at the description family's budget. The real-template
# prompt test (tests/test_golden_prompts.py, the real processors) runs first, in pytest.
# A summary table always ends it: per model the dtype, load time, requests/s at batch 1 and at
# the auto batch, peak GPU memory, answers that differ between the two (bf16 batching may
# change greedy answers: the noise floor the statistics measure), likelihood requests/s,
# description tokens of its budget, the template test (pass, FAIL, skipped) and the status.
#
#   scripts/gpu_check.sh                      # every cached real model
#   scripts/gpu_check.sh --model gemma-3-4b-it
#   scripts/gpu_check.sh --model llava-v1.6-mistral-7b --device-map auto   # spread over all GPUs
#   scripts/gpu_check.sh --calibration calibration.json   # also prefill/decode tokens/s
#   scripts/gpu_check.sh --device cpu --model tiny-llava --images 2   # the CPU dry run
#
# With --device-map, each model is loaded as a spec's `device_map: auto` loads it (accelerate
# places it over every visible GPU); peak memory is summed over the GPUs. With --calibration
# FILE it also writes each model's prefill and decode tokens/s to FILE, for
# `medbench plan --suite paper --cost --calibration FILE` (GPU-hours). Other options:
# --images N, --budget-s S, --specs DIR (python -m medbench.checks.gpu --help).
#
# Exit status: 0 every model passed; 1 a model failed, timed out or failed the template test;
# 2 no GPU environment (no .venv, or torch without CUDA: it says how to make one). PYTHON=...
# runs it with another interpreter. The CPU dry run is tested (tests/checks/test_gpu_check.py).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ ! -x .venv/bin/python ]; then
        echo "scripts/gpu_check.sh: no .venv here. Make the GPU environment first:" \
            "make venv GPU=cu130 (README, \"The locked environment\")." >&2
        exit 2
    fi
    PYTHON=.venv/bin/python
fi
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
# A backstop only: the check's own 540 s budget ends it, summary printed, before this.
exec timeout 600 "$PYTHON" -m medbench.checks.gpu --device cuda "$@"
