#!/usr/bin/env bash
# Training speed of pocketrec against the PyTorch reference, in one command so both see the same
# machine state. Also measures numpy's OpenBLAS on a 2048x512x256 GEMM (the issue's yardstick of
# this machine's GEMM rate) beside the gemm crate's rate that `pocketrec bench train` reports.
# Usage: bench/compare_speed.sh [BATCH] [STEPS]   (needs torch and numpy: pip install torch numpy)
# Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH=${1:-128}
STEPS=${2:-200}
PYTHON=${PYTHON:-python3}
cargo build --release -q -p pocketrec-trainer
ours=$(target/release/pocketrec bench train --batch "$BATCH" --steps "$STEPS" --json)
theirs=$("$PYTHON" bench/torch_dlrm.py speed --batch "$BATCH" --steps "$STEPS")
numpy=$("$PYTHON" - <<'PY'
import time, numpy as np
a, b = np.random.rand(2048, 512).astype(np.float32), np.random.rand(512, 256).astype(np.float32)
best = min((lambda t: (a @ b, time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(50))
print(2 * 2048 * 512 * 256 / best / 1e9)
PY
)
echo "pocketrec: $ours"
echo "pytorch:   $theirs"
python3 - "$ours" "$theirs" "$numpy" <<'PY'
import json, re, sys
ours = json.loads(sys.argv[1])
theirs = float(re.search(r"([0-9.]+) samples/s", sys.argv[2]).group(1))
numpy = float(sys.argv[3])
print(f"pocketrec / pytorch = {ours['samples_per_s'] / theirs:.2f}x at this batch size")
print(f"pocketrec {ours['gflops']:.1f} GFLOP/s = {100 * ours['ratio_to_gemm']:.0f}% of the gemm crate's "
      f"{ours['gemm_gflops']:.1f} GFLOP/s, {100 * ours['gflops'] / numpy:.0f}% of numpy/OpenBLAS's {numpy:.1f} GFLOP/s "
      f"(2048x512x256, same run)")
print(f"ceiling: the step's own GEMMs alone run at {100 * ours['step_gemms_only_ratio_to_gemm']:.0f}% of the gemm crate's rate")
PY
