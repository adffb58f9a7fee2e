#!/usr/bin/env bash
# kill -9 a training run at random points, KILLS times (default 20), each time restarting it with
# --resume when a checkpoint exists; then let the last run finish and check that
#   - it finishes (exit 0),
#   - the folder holds only the data, the reference model and the model: no checkpoint, no
#     .NAME.tmpPID temporaries of the killed runs,
#   - its model is byte-identical to an uninterrupted run's.
# Small synthetic data, the small preset, 2 threads: a few minutes on 2 cores.
#
# Usage: scripts/kill9-loop.sh [KILLS]
#   POCKETREC=path/to/pocketrec (default: this checkout's target/release/pocketrec, built if stale)
#   KILL9_DIR=folder to work in (default: a new temporary folder, removed on success)
#   KILL9_MAX_MS=longest wait before a kill, in milliseconds (default: the uninterrupted run's time
#   divided by KILLS, so the kills spread over the whole run on any machine)
set -euo pipefail
kills=${1:-20}
bin=${POCKETREC:-}
if [ -z "$bin" ]; then
  # This checkout's release binary, as `make build` makes it (rebuilt if stale, so old code is
  # never what is tested).
  (cd "$(dirname "$0")/.." && cargo build -q --release -p pocketrec-trainer --bin pocketrec)
  bin=$(cd "$(dirname "$0")/.." && echo "${CARGO_TARGET_DIR:-$PWD/target}")/release/pocketrec
fi
[ -x "$bin" ] || { echo "no pocketrec binary at $bin" >&2; exit 2; }
bin=$(realpath "$bin")
dir=${KILL9_DIR:-$(mktemp -d /tmp/pocketrec-kill9.XXXXXX)}
mkdir -p "$dir"
cd "$dir"

"$bin" synth --rows 200000 --seed 11 --quiet -o train.tsv
opts=(--train train.tsv --preset small --memory 1MB --batch 64 --epochs 2 --threads 2 --seed 3
      --checkpoint-every 10 --quiet)

start=$(date +%s%N)
"$bin" train "${opts[@]}" -o reference.safetensors > /dev/null 2> stderr.txt || { cat stderr.txt; exit 1; }
run_ms=$(( ($(date +%s%N) - start) / 1000000 ))
max_ms=${KILL9_MAX_MS:-$(( run_ms / kills > 100 ? run_ms / kills : 100 ))}
echo "uninterrupted run: $run_ms ms; kills at random points within $max_ms ms of each start"
done_kills=0

for i in $(seq 1 "$kills"); do
  resume=()
  [ -e model.safetensors.ckpt ] && resume=(--resume)
  "$bin" train "${opts[@]}" "${resume[@]}" -o model.safetensors > /dev/null 2> stderr.txt &
  pid=$!
  ms=$(( RANDOM % max_ms ))
  sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  if kill -9 "$pid" 2> /dev/null; then
    wait "$pid" 2> /dev/null || true
    step=none
    [ -e model.safetensors.ckpt ] && step=$(head -c 100000 model.safetensors.ckpt | grep -ao '\\"step\\":[0-9]*' | head -1 | grep -o '[0-9]*$' || echo '?')
    temps=$(find . -maxdepth 1 -name '.*.tmp*' | wc -l)
    echo "kill $i after ${ms} ms ${resume[*]:-(fresh)}: checkpoint at step $step, $temps stray temporaries"
    done_kills=$i
  else
    wait "$pid" || { echo "run $i failed:"; cat stderr.txt; exit 1; }
    echo "run $i finished before its kill at ${ms} ms: the run is shorter than the kills; lower KILL9_MAX_MS"
    break
  fi
done

resume=()
[ -e model.safetensors.ckpt ] && resume=(--resume)
"$bin" train "${opts[@]}" "${resume[@]}" -o model.safetensors > /dev/null 2> stderr.txt \
  || { echo "FAIL: the final run failed:"; cat stderr.txt; exit 1; }
rm stderr.txt
left=$(ls -A | tr '\n' ' ')
echo "files left: $left"
[ "$left" = "model.safetensors reference.safetensors train.tsv " ] || { echo "FAIL: stray files"; exit 1; }
cmp model.safetensors reference.safetensors || { echo "FAIL: the resumed model differs"; exit 1; }
[ "$done_kills" -eq "$kills" ] || { echo "FAIL: only $done_kills of $kills kills landed before the run finished; lower KILL9_MAX_MS"; exit 1; }
echo "PASS: $kills kills, byte-identical to the uninterrupted run ($(stat -c %s model.safetensors) bytes), no stray files"
[ -n "${KILL9_DIR:-}" ] || rm -rf "$dir"
