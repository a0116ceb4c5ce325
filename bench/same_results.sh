#!/usr/bin/env bash
# Same seed -> same weights and eval.json? Runs a short pretrain, a fine-tune from it and an
# evaluation, with PyAV (2 workers, H.264) and DALI on the CPU (VP9), and prints hashes:
#   sha256 of every model tensor (key order) of each final checkpoint, and of eval.json.
# Usage: bench/same_results.sh [WORKDIR]   (run it on two commits and compare the lines)
set -euo pipefail
WORK=${1:-/tmp/fastssl-same}
FASTSSL=${FASTSSL:-fastssl}
rm -rf "$WORK"; mkdir -p "$WORK"
hash_model() {
  python3 - "$1" <<'PY'
import hashlib, sys, torch
state = torch.load(sys.argv[1], map_location="cpu", weights_only=True)["model"]
h = hashlib.sha256()
for k in sorted(state):
    h.update(k.encode()); h.update(state[k].contiguous().numpy().tobytes())
print(h.hexdigest())
PY
}
for pair in "pyav h264" "dali vp9"; do
  set -- $pair; loader=$1; codec=$2
  d=$WORK/$loader
  $FASTSSL synth "$d/data" --classes 3 --videos-per-class 4 --frames 32 --size 96x72 --codec "$codec" --seed 0 >/dev/null
  common=(--data "$d/data" --loader "$loader" --workers 2 --batch-size 4 --steps 6 --log-every 2 --seed 0)
  $FASTSSL pretrain "${common[@]}" --out "$d/pre" --mode rp >/dev/null 2>&1
  $FASTSSL finetune "${common[@]}" --out "$d/ft" --init "$d/pre/checkpoint.pt" --eval-every 3 >/dev/null 2>&1
  $FASTSSL evaluate --data "$d/data" --loader "$loader" --workers 2 --checkpoint "$d/ft/checkpoint.pt" --out "$d/eval" >/dev/null 2>&1
  echo "$loader pretrain weights  $(hash_model "$d/pre/checkpoint.pt")"
  echo "$loader finetune weights  $(hash_model "$d/ft/checkpoint.pt")"
  echo "$loader eval.json         $(sha256sum < "$d/eval/eval.json" | cut -c1-64)"
done
