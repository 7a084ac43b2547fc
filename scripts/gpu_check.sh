#!/usr/bin/env bash
# The GPU check, one command, at most 8 minutes on one H100 (time limits 150 + 90 + 2 x 120 s):
#   1. kernels     every loss kernel's CUDA test against its plain-torch twin, among them
#                  tests/ops/test_gpu_real_shapes.py at N=16, T=1024, V=151,936, H=2048, bf16;
#   2. train_step  one bf16 training step of Qwen2.5-VL-3B and InternVL3-2B at their real widths
#                  (one decoder layer) on CUDA, bf16 autocast and the fused Triton loss;
#   3. benches     benches/bench_loss.py and benches/bench_fused_linear.py: ours against eager,
#                  torch.compile and Liger-Kernel (when installed: pip install -e '.[peers]');
# then one summary table (scripts/gpu_summary.py). Everything a section writes goes to OUT
# (default gpu-check-<date>): JUnit XML, the benchmark JSON, each section's log and exit status.
#
#   scripts/gpu_check.sh [OUT]
#   GRIT_FAST_GPU_CHECK_DRY_RUN=1 scripts/gpu_check.sh OUT   # the same pieces on CPU, tiny shapes
#
# Record the numbers in benches/RESULTS.md with the GPU's name.
set -uo pipefail
cd "$(dirname "$0")/.."

out=${1:-gpu-check-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
export GRIT_FAST_REQUIRE_FAST=1  # a fast path that cannot run is a failure here, not a skip
dry=${GRIT_FAST_GPU_CHECK_DRY_RUN:-0}
if [ "$dry" != 0 ]; then
  export TRITON_INTERPRET=1
  limits=(600 600 600)
else
  if ! python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: no CUDA device here (GRIT_FAST_GPU_CHECK_DRY_RUN=1 checks the pieces on CPU)" >&2
    exit 2
  fi
  limits=(150 90 120)
  python -c 'import torch; print("gpu_check:", torch.cuda.get_device_name(0), "torch", torch.__version__)'
fi

section() {  # name, seconds, command...
  local name=$1 limit=$2
  shift 2
  echo "== $name (at most ${limit} s): $*"
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  echo $? >"$out/$name.rc"
  tail -n 3 "$out/$name.log"
}

section kernels "${limits[0]}" python -m pytest -q \
  tests/ops/test_triton.py tests/ops/test_fused_linear.py tests/ops/test_kernel_guards.py \
  tests/ops/test_reference.py tests/ops/test_gpu_real_shapes.py --junitxml="$out/kernels.xml"
section train_step "${limits[1]}" python -m pytest -q tests/train/test_real_width.py \
  --junitxml="$out/train_step.xml"
# Each bench file is its own section (pytest-benchmark writes its JSON at the end of a run). A dry
# run times the CPU paths, not Triton's interpreter, whose copies of 151,936-wide rows in the
# memory sweeps exhausted a 24 GiB machine.
for bench in bench_loss bench_fused_linear; do
  section "$bench" "${limits[2]}" env -u TRITON_INTERPRET python -m pytest -q "benches/$bench.py" \
    --benchmark-json="$out/$bench.json" --benchmark-group-by=group --benchmark-columns=min,median
done

python scripts/gpu_summary.py "$out" | tee "$out/summary.txt"
exit "${PIPESTATUS[0]}"
