#!/usr/bin/env bash
# The GPU half of the speed benchmark, as one script for a borrowed accelerator machine (see README, Speed).
#
#   bash benchmarks/accelerator_check.sh prepare   # here: wheels of what the GPU machine lacks, the JPEG data
#   bash benchmarks/accelerator_check.sh run       # there (the device tool, carry: .whl .device-data):
#                                                   # trainer_speed on the GPU, JSON and log into $OUT
#   PYTHON=.venv/bin/python DEVICE=cpu SPEED_ARGS="--scale 0.02 --rounds 1" OUT=/tmp/out \
#     bash benchmarks/accelerator_check.sh run     # a dry run of the same steps here
#
# The GPU machine has torch, torchvision, pandas and matplotlib but not hydra-core, omegaconf and antlr4
# (the benchmark composes conf/model/ as the app does); it reaches no package registry, so their wheels travel.
# antlr4-python3-runtime 4.9.3 ships no wheel: it is built here.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
  grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >>.git/info/exclude
  grep -qx '/.device-data/' .git/info/exclude || echo '/.device-data/' >>.git/info/exclude
  mkdir -p .whl .device-data
  python3 -m pip download -q --no-deps --only-binary=:all: -d .whl hydra-core==1.3.2 omegaconf==2.3.0
  python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
  cp ../shared/data/cifar10-jpg.tar.gz .device-data/
  ls -la .whl .device-data
  ;;
run)
  PYTHON="${PYTHON:-python3}"
  OUT="${OUT:-benchmarks/results}"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 CIFAR_SWEEP_CACHE=/tmp/cifar-sweep-cache
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt" 2>&1 || true
  set -o pipefail
  # shellcheck disable=SC2086  # SPEED_ARGS is a list of arguments
  "$PYTHON" benchmarks/trainer_speed.py --device "${DEVICE:-cuda}" --rounds 3 --data .device-data/cifar10-jpg.tar.gz \
    --networks tutorial resnet_250k resnet9_early resnet9_early_pool_first --eval-batch-sizes 400 2000 \
    ${SPEED_ARGS:-} --out "$OUT/trainer_speed-${DEVICE:-cuda}.json" 2>&1 | tee "$OUT/trainer_speed-${DEVICE:-cuda}.log"
  ;;
*)
  echo "usage: bash benchmarks/accelerator_check.sh prepare|run" >&2
  exit 2
  ;;
esac
