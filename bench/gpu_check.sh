#!/usr/bin/env bash
# One-shot check of a GPU host with no network, in under 5 minutes:
#   1 env        nvidia-smi, python and package versions
#   2 torch      torch sees the GPU (and runs a matmul on it)
#   3 dali       DALI and PyAV import (from PYTHONPATH), a tiny DALI pipeline runs on the GPU
#   4 nvdec      the driver's video decode library (libnvcuvid) is present: DALI's NVDEC needs it
#   5 synth      a small H.264 synthetic dataset
#   6 pytest     pytest -m gpu
#   7 bench      fastssl bench, paper preset, on what time is left (bounded)
# Every step is time-boxed (timeout) and logged to OUTDIR/NN-step.log as it ends; a failing step
# is reported and the others still run. OUTDIR/summary.txt grows step by step; bench JSON in
# OUTDIR/bench.json. Exit status 0 whenever the summary was written (read it for the verdict).
#
# Usage (from the repository root, after `python3 -m pip install --no-deps --no-build-isolation -e .`):
#   PYTHONPATH=/tmp/site bash bench/gpu_check.sh OUTDIR
# Environment: PYTHON (default python3), TOTAL_S (default 290: the whole run's budget, seconds).
set -u

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUT=$1
mkdir -p "$OUT" || { echo "cannot create $OUT" >&2; exit 2; }
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python3}
TOTAL_S=${TOTAL_S:-290}
START=$(date +%s)
SUMMARY="$OUT/summary.txt"
N=0
HAVE_GPU=0

elapsed() { echo $(( $(date +%s) - START )); }
say() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME TIMEOUT_S COMMAND...: run it, log it, record the outcome; never stops the script.
step() {
    local name=$1 limit=$2
    shift 2
    N=$((N + 1))
    local log
    log=$(printf "%s/%02d-%s.log" "$OUT" "$N" "$name")
    local t0 rc status
    t0=$(date +%s)
    echo "== [$N] $name (limit ${limit}s) =="
    timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
    rc=$?
    case $rc in
        0) status="ok" ;;
        124|137) status="TIMEOUT after ${limit}s" ;;
        3) status="NO GPU" ;;
        4) status="NOT FOUND" ;;
        *) status="FAILED (exit $rc)" ;;
    esac
    say "$(printf "%-8s %-24s %4ss  %s" "$name" "$status" "$(( $(date +%s) - t0 ))" "$log")"
    tr '\r' '\n' <"$log" | grep -v '^\s*$' | tail -n 5 | cut -c1-200 | sed 's/^/    /'
    return $rc
}

say "fastssl gpu_check  $(date -Is)  host $(hostname)  outdir $OUT"
say "python: $($PY -c 'import sys; print(sys.executable, sys.version.split()[0])' 2>&1)  PYTHONPATH=${PYTHONPATH:-}"

# 1 env ---------------------------------------------------------------------------------------
step env 15 bash -c "
    (command -v nvidia-smi >/dev/null && nvidia-smi) || echo 'nvidia-smi: not found'
    $PY - <<'EOF'
import importlib.util, json
from fastssl.benchmarks.machine import machine_info
print(json.dumps(machine_info(), indent=1))
EOF
"

# 2 torch sees the GPU ------------------------------------------------------------------------
if step torch 25 "$PY" -c "
import sys, torch
print('torch', torch.__version__, 'cuda', torch.version.cuda)
if not torch.cuda.is_available():
    print('NO GPU: torch.cuda.is_available() is False'); sys.exit(3)
x = torch.randn(4096, 4096, device='cuda')
torch.cuda.synchronize()
print(torch.cuda.get_device_name(0), 'capability', torch.cuda.get_device_capability(0),
      'matmul ok:', bool(torch.isfinite(x @ x).all()))
"; then
    HAVE_GPU=1
else
    say "         -> no usable GPU: the GPU-only steps below report themselves as skipped"
fi

# 3 DALI (+ PyAV) import, tiny pipeline on the GPU ---------------------------------------------
step dali 30 "$PY" -c "
import av, nvidia.dali as dali, numpy as np
from nvidia.dali import fn, pipeline_def, types
print('dali', dali.__version__, 'from', dali.__file__, '| av', av.__version__)
import torch
gpu = torch.cuda.is_available()
@pipeline_def(batch_size=2, num_threads=2, device_id=0 if gpu else None)
def p():
    x = fn.external_source(source=lambda: [np.full((4, 8, 8, 3), 7, np.uint8)] * 2, batch=True, layout='FHWC')
    return fn.crop_mirror_normalize(x.gpu() if gpu else x, dtype=types.FLOAT, mean=[1, 1, 1], std=[2, 2, 2],
                                    output_layout='FHWC')
pipe = p(); pipe.build(); (o,) = pipe.run()
print('pipeline on', 'GPU' if gpu else 'CPU (no GPU)', 'ok:', float(np.asarray((o.as_cpu() if gpu else o)[0]).mean()) == 3.0)
"

# 4 NVDEC: the driver's video decode library ---------------------------------------------------
step nvdec 5 bash -c '
    found=$( (ldconfig -p 2>/dev/null | grep -o "/[^ ]*libnvcuvid\.so[^ ]*") ;
             ls /usr/lib/x86_64-linux-gnu/libnvcuvid.so* /usr/lib64/libnvcuvid.so* /usr/lib/libnvcuvid.so* \
                /usr/local/nvidia/lib64/libnvcuvid.so* /usr/local/cuda/lib64/libnvcuvid.so* \
                /usr/lib/wsl/lib/libnvcuvid.so* 2>/dev/null)
    if [ -n "$found" ]; then
        echo "NVDEC usable: libnvcuvid found:"; echo "$found" | sort -u
    else
        echo "NVDEC NOT usable: no libnvcuvid.so* (ldconfig -p and common paths); DALI cannot decode on the GPU"
        exit 4
    fi'

# 5 a small H.264 dataset ----------------------------------------------------------------------
step synth 30 "$PY" -m fastssl synth "$OUT/data" --codec h264 --classes 4 --videos-per-class 4 \
    --frames 48 --size 320x240 --force

# 6 pytest -m gpu ------------------------------------------------------------------------------
step pytest 45 "$PY" -m pytest -m gpu -q -p no:cacheprovider -rs

# 7 fastssl bench, paper preset, on the time that is left ---------------------------------------
LEFT=$(( TOTAL_S - $(elapsed) - 15 ))
if [ "$HAVE_GPU" != 1 ]; then
    say "$(printf "%-8s %-24s" bench "skipped: no GPU (the paper-preset bench is for a GPU host)")"
elif [ "$LEFT" -lt 40 ]; then
    say "$(printf "%-8s %-24s" bench "skipped: only ${LEFT}s left of ${TOTAL_S}s")"
else
    DATA_ARGS=()
    [ -f "$OUT/data/index.csv" ] && DATA_ARGS=(--data "$OUT/data")
    step bench "$LEFT" "$PY" -m fastssl.cli_bench --preset paper --device cuda "${DATA_ARGS[@]}" \
        --seconds 3 --steps 20 --time-budget $(( LEFT - 10 )) --json "$OUT/bench.json"
    if [ -f "$OUT/bench.json" ]; then
        "$PY" - "$OUT/bench.json" <<'EOF' | tee -a "$SUMMARY"
import json, sys
doc = json.load(open(sys.argv[1]))
print("bench ratios:", ", ".join(f"{k}={v:.3g}" for k, v in doc["ratios"].items() if v is not None))
for name, c in doc["components"].items():
    m = c.get("metric") or {}
    print(f"  {name:16} {c.get('status'):8} {format(m['median'], '.4g') if m.get('median') is not None else '':>10} {m.get('unit', '')}"
          + (f"  ({c.get('reason') or c.get('error')})" if c.get("status") != "ok" else ""))
EOF
    fi
fi

say "done in $(elapsed)s; GPU: $([ "$HAVE_GPU" = 1 ] && echo yes || echo NO); logs and JSON in $OUT"
exit 0
