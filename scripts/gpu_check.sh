#!/usr/bin/env bash
# The GPU check of issue 16, for a maintainer on a machine with one CUDA GPU (under 10 minutes):
# every shipped real model found in the local Hugging Face cache (others are skipped) loads in
# bf16 and answers 16 sample images x 2 variants at batch 1, then at the automatic batch size;
# each model's line gives its load time, images/s, peak GPU memory and how many answers differ
# between batch 1 and batch N (bf16 batching may change greedy answers: that is the noise floor
# the statistics measure). Nothing is downloaded: download the models first (`hf download ...`).
#
#   scripts/gpu_check.sh                      # every cached real model
#   scripts/gpu_check.sh --model gemma-3-4b-it
#   scripts/gpu_check.sh --model llava-v1.6-mistral-7b --device-map auto   # spread over all GPUs
#
# With --device-map, each model is loaded as a spec's `device_map: auto` loads it (accelerate
# places it over every visible GPU, medbench never moves it); its line names the devices used
# and the peak memory is summed over them. Run it with at least two GPUs visible to check a
# real split (CUDA_VISIBLE_DEVICES=0,1); with one GPU it checks the same code path.
#
# Exit status 1 if a model failed to load or answer. The same code runs on a tiny model on the
# CPU in the tests (tests/checks/test_gpu_check.py); this script itself has not been run on a GPU yet.
# With --calibration FILE it also measures each model's prefill and decode tokens/s and writes
# them to FILE, for `medbench plan --suite paper --cost --calibration FILE` (GPU-hours).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
exec timeout 600 "$PYTHON" -m medbench.checks.gpu --device cuda --dtype bfloat16 "$@"
