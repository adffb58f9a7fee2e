#!/usr/bin/env bash
# Training speed of pocketrec against the PyTorch reference, in one command so both see the same
# machine state. Usage: bench/compare_speed.sh [BATCH] [STEPS]   (needs torch: pip install torch)
# Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH=${1:-128}
STEPS=${2:-200}
PYTHON=${PYTHON:-python3}
cargo build --release -q -p pocketrec-trainer
ours=$(target/release/pocketrec bench train --batch "$BATCH" --steps "$STEPS" --json)
theirs=$("$PYTHON" bench/torch_dlrm.py speed --batch "$BATCH" --steps "$STEPS")
echo "pocketrec: $ours"
echo "pytorch:   $theirs"
python3 - "$ours" "$theirs" <<'PY'
import json, re, sys
ours = json.loads(sys.argv[1])["samples_per_s"]
theirs = float(re.search(r"([0-9.]+) samples/s", sys.argv[2]).group(1))
print(f"pocketrec / pytorch = {ours / theirs:.2f}x at this batch size")
PY
