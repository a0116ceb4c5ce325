#!/usr/bin/env bash
# GPU check: what a first GPU must tell us about fastssl, within ONE time budget, leaving a results
# folder of at most 8 files, at most two folders down (for remote hosts that copy little back):
#   summary.txt    one line per step (status, seconds, limit), the tail of any failing step, the figures
#   bench.json     fastssl bench (default groups but eval)      compile.json   --only compile
#   eval.json      fastssl bench --only eval                    logs.tar.gz    every step's log (NN-name.log)
# The dataset, run folders and logs live in a temp folder (mktemp -d) removed at the end.
#
# Usage (from anywhere, with fastssl importable by $PYTHON):
#   bash bench/gpu_check.sh OUTDIR
# Environment:
#   PYTHON          interpreter (default python3)
#   GPU_CHECK_S     the whole run's budget in seconds (default 480). A step's limit is the smaller of
#                   its own budget and what is left (less a reserve for packing the results), so when
#                   time runs out the lowest-ranked steps are the ones skipped.
# Exit status 0 whenever summary.txt was written (read it for the verdict); 2 for bad usage.
#
# The steps, ranked by what the first GPU must tell us (setup first: each later step needs it). To
# add one: a line here and a function `step_<name>` below (exit status 0 ok, 3 no GPU, 4 not found,
# 5 skipped - anything else is a failure).
STEPS="
# name      budget_s  what
env         20        nvidia-smi, python and package versions (fastssl.benchmarks.machine)
torch       30        torch sees the GPU and runs a matmul on it
dali        40        DALI and PyAV import; a tiny DALI pipeline runs on the GPU
nvdec       10        the driver's video decode library (libnvcuvid) is present: NVDEC needs it
synth       60        a small H.264 synthetic dataset, in the temp folder
syncdebug   150       FASTSSL_SYNC_DEBUG=1 pretrain and finetune (DALI, paper, 40 steps): no host-GPU sync
bench       220       fastssl bench, paper preset, with NVDEC utilisation (nvidia-smi dmon -s u) alongside
compile     150       fastssl bench --only compile: torch.compile vs eager model steps
eval        60        fastssl bench --only eval: evaluation clips/s
pytest      80        pytest -m gpu
torchrun    60        torchrun --standalone --nproc-per-node 1 -m fastssl pretrain (paper, 40 steps)
determinism 90        the same pretrain (30 steps) without and with --deterministic: clips/s side by side
"
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
TOTAL_S=${GPU_CHECK_S:-480}
RESERVE_S=15                     # kept back for packing the logs and the last summary lines
START=$(date +%s)
WORK=$(mktemp -d /tmp/gpucheck.XXXXXX) || { echo "mktemp failed" >&2; exit 2; }
LOGS="$WORK/logs"
DATA="$WORK/data"
RUNS="$WORK/runs"                # run folders of the torchrun and determinism steps
mkdir -p "$LOGS" "$RUNS"
export PY DATA OUT RUNS WORK
SUMMARY="$OUT/summary.txt"
rm -f "$SUMMARY" "$OUT"/{bench,compile,eval}.json "$OUT/logs.tar.gz"
HAVE_GPU=0
N=0

elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( TOTAL_S - $(elapsed) - RESERVE_S )); }
say() { echo "$*" | tee -a "$SUMMARY"; }

finish() {
    # Runs on any exit (normal, error, signal): pack the logs, drop the temp folder.
    local rc=$?
    trap - EXIT INT TERM
    tar -czf "$OUT/logs.tar.gz" -C "$WORK" logs 2>/dev/null || say "could not pack the logs"
    rm -rf "$WORK"
    say "done in $(elapsed)s of ${TOTAL_S}s; GPU: $([ "$HAVE_GPU" = 1 ] && echo yes || echo NO); results: $(cd "$OUT" && ls | tr '\n' ' ')"
    exit $rc
}
trap finish EXIT
trap 'say "interrupted"; exit 1' INT TERM

# run_step NAME BUDGET: run step_NAME time-boxed, log it, record the outcome; never stops the script.
run_step() {
    local name=$1 budget=$2 limit rc status t0 log
    N=$((N + 1))
    log=$(printf "%s/%02d-%s.log" "$LOGS" "$N" "$name")
    limit=$(left)
    if [ "$budget" -lt "$limit" ]; then limit=$budget; fi
    if [ "$limit" -lt 5 ]; then
        say "$(printf "%-11s %-28s %4s   budget %s" "$name" "skipped: time budget spent" - "$budget")"
        return 5
    fi
    t0=$(date +%s)
    echo "== [$N] $name (limit ${limit}s) =="
    export -f "step_$name"
    HAVE_GPU=$HAVE_GPU STEP_LIMIT=$limit timeout --kill-after=5 "$limit" bash -c "step_$name" >"$log" 2>&1 </dev/null
    rc=$?
    case $rc in
        0) status="ok" ;;
        124|137) status="TIMEOUT after ${limit}s" ;;
        3) status="NO GPU" ;;
        4) status="NOT FOUND" ;;
        5) status="skipped" ;;
        *) status="FAILED (exit $rc)" ;;
    esac
    say "$(printf "%-11s %-28s %4ss  budget %s, limit %ss" "$name" "$status" "$(( $(date +%s) - t0 ))" "$budget" "$limit")"
    if [ "$rc" != 0 ]; then
        tr '\r' '\n' <"$log" | grep -v '^\s*$' | tail -n 5 | cut -c1-200 | sed 's/^/    /' | tee -a "$SUMMARY"
    fi
    return $rc
}

# ---- the steps (each runs in its own bash under `timeout`; PY DATA OUT HAVE_GPU STEP_LIMIT set) ----

step_env() {
    (command -v nvidia-smi >/dev/null && nvidia-smi) || echo 'nvidia-smi: not found'
    "$PY" -c 'import json; from fastssl.benchmarks.machine import machine_info; print(json.dumps(machine_info(), indent=1))'
}

step_torch() {
    "$PY" -c "
import sys, torch
print('torch', torch.__version__, 'cuda', torch.version.cuda)
if not torch.cuda.is_available():
    print('NO GPU: torch.cuda.is_available() is False'); sys.exit(3)
x = torch.randn(4096, 4096, device='cuda')
torch.cuda.synchronize()
print(torch.cuda.get_device_name(0), 'capability', torch.cuda.get_device_capability(0),
      'matmul ok:', bool(torch.isfinite(x @ x).all()))
"
}

step_dali() {
    "$PY" -c "
import sys
from fastssl.data.loaders import DALI_INSTALL, dali_available
if not dali_available():
    print('NOT FOUND: nvidia.dali does not import (' + DALI_INSTALL + ')'); sys.exit(4)
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
ok = float(np.asarray((o.as_cpu() if gpu else o)[0]).mean()) == 3.0
print('pipeline on', 'GPU' if gpu else 'CPU (no GPU)', 'ok:', ok)
sys.exit(0 if ok else 1)
"
}

step_nvdec() {
    local found
    found=$( (ldconfig -p 2>/dev/null | grep -o "/[^ ]*libnvcuvid\.so[^ ]*") ;
             ls /usr/lib/x86_64-linux-gnu/libnvcuvid.so* /usr/lib64/libnvcuvid.so* /usr/lib/libnvcuvid.so* \
                /usr/local/nvidia/lib64/libnvcuvid.so* /usr/local/cuda/lib64/libnvcuvid.so* \
                /usr/lib/wsl/lib/libnvcuvid.so* 2>/dev/null)
    if [ -n "$found" ]; then
        echo "NVDEC usable: libnvcuvid found:"; echo "$found" | sort -u
    else
        echo "NVDEC NOT usable: no libnvcuvid.so* (ldconfig -p and common paths); DALI cannot decode on the GPU"
        return 4
    fi
}

step_synth() {
    # Without a GPU: a tiny dataset, only so that the bench step's plumbing can be checked.
    if [ "$HAVE_GPU" = 1 ]; then
        "$PY" -m fastssl synth "$DATA" --codec h264 --classes 4 --videos-per-class 4 --frames 48 --size 320x240 --force
    else
        "$PY" -m fastssl synth "$DATA" --codec h264 --classes 2 --videos-per-class 2 --frames 24 --size 96x72 --force
    fi
}

step_pytest() {
    if [ "$HAVE_GPU" != 1 ]; then echo "no GPU: pytest -m gpu would only skip"; return 5; fi
    "$PY" -m pytest -m gpu -q -p no:cacheprovider -rs
}

step_torchrun() {
    # The data-parallel code path (issue 10) with one rank on the one GPU: process group (NCCL),
    # DDP wrapping, LOCAL_RANK device, the host gloo group for metrics and stop decisions.
    if [ "$HAVE_GPU" != 1 ]; then
        echo "no GPU: the torchrun check runs on CUDA only (CPU: tests/test_distributed.py)"; return 5
    fi
    [ -f "$DATA/index.csv" ] || { echo "no dataset (the synth step failed)"; return 1; }
    local run="$RUNS/torchrun" rc t0
    t0=$(date +%s)
    MASTER_ADDR=127.0.0.1 GLOO_SOCKET_IFNAME=lo "$PY" -m torch.distributed.run --standalone --nproc-per-node 1 \
        -m fastssl pretrain --data "$DATA" --out "$run" --force --preset paper --device cuda --steps 40 \
        --log-every 5 --ckpt-every 1000000
    rc=$?
    echo "torchrun exit status $rc after $(( $(date +%s) - t0 ))s"
    [ "$rc" = 0 ] || return "$rc"
    echo "torchrun --nproc-per-node 1: $(pretrain_rate "$run" 10 | head -n 1)"
}

step_determinism() {
    # What --deterministic costs on CUDA: the same short run without and with it.
    if [ "$HAVE_GPU" != 1 ]; then echo "no GPU: --deterministic only changes CUDA runs"; return 5; fi
    [ -f "$DATA/index.csv" ] || { echo "no dataset (the synth step failed)"; return 1; }
    local flag run rate plain="" det=""
    for flag in "" --deterministic; do
        run="$RUNS/det${flag:+-on}"
        "$PY" -m fastssl pretrain --data "$DATA" --out "$run" --force --preset paper --device cuda \
            --steps 30 --log-every 5 --ckpt-every 1000000 $flag || return
        rate=$(pretrain_rate "$run" 10) || return
        echo "${flag:-(default)}: $(echo "$rate" | head -n 1)"
        if [ -z "$flag" ]; then plain=${rate##*RATE }; else det=${rate##*RATE }; fi
    done
    "$PY" -c "import sys; a, b = map(float, sys.argv[1:]); print(f'determinism: clips/s {a:.1f} default, '
              f'{b:.1f} with --deterministic: {b / a:.3f}x ({100 * (1 - b / a):.1f}% cost)')" "$plain" "$det"
}

step_syncdebug() {
    # The training loop raises at any host-GPU sync between log points under FASTSSL_SYNC_DEBUG=1
    # (torch.cuda.set_sync_debug_mode("error")): both tasks, the DALI loader, the paper preset.
    if [ "$HAVE_GPU" != 1 ]; then
        echo "no GPU: sync debugging is CUDA only (CPU: tests/test_host_waits.py)"; return 5
    fi
    [ -f "$DATA/index.csv" ] || { echo "no dataset (the synth step failed)"; return 1; }
    local command
    for command in pretrain finetune; do
        FASTSSL_SYNC_DEBUG=1 "$PY" -m fastssl "$command" --data "$DATA" --out "$RUNS/sync-$command" --force \
            --loader dali --preset paper --device cuda --steps 40 --log-every 10 --ckpt-every 1000000 || return
        echo "syncdebug $command: no sync between log points; $(pretrain_rate "$RUNS/sync-$command" 10 | head -n 1)"
    done
}

# bench_json NAME ARGS...: fastssl bench into $OUT/NAME.json within the step's limit; print its figures.
bench_json() {
    local name=$1
    shift
    "$PY" -m fastssl.cli_bench "$@" --time-budget $(( STEP_LIMIT - 10 )) --json "$OUT/$name.json" || return
    "$PY" - "$OUT/$name.json" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
print("bench ratios:", ", ".join(f"{k}={v:.3g}" for k, v in doc["ratios"].items() if v is not None) or "-")
for name, c in doc["components"].items():
    m = c.get("metric") or {}
    med = format(m["median"], ".4g") if m.get("median") is not None else ""
    why = f"  ({c.get('reason') or c.get('error')})" if c.get("status") != "ok" else ""
    print(f"  {name:18} {c.get('status'):8} {med:>10} {m.get('unit', '')}{why}")
EOF
}
export -f bench_json

step_bench() {
    local data=() dmon="" rc
    [ -f "$DATA/index.csv" ] && data=(--data "$DATA")
    if [ "$HAVE_GPU" != 1 ]; then  # plumbing only: the command line, one cheap component, the JSON
        bench_json bench --device cpu "${data[@]}" --only op.copy --seconds 0.2 --warmup 0
        return
    fi
    if command -v nvidia-smi >/dev/null; then  # NVDEC ("dec") utilisation, sampled every second
        nvidia-smi dmon -s u -d 1 >"$WORK/dmon.txt" 2>&1 &
        dmon=$!
    fi
    bench_json bench --preset paper --device cuda "${data[@]}" --seconds 3 --steps 20 --skip eval
    rc=$?
    if [ -n "$dmon" ]; then
        kill "$dmon" 2>/dev/null
        awk '/^#/ { for (i = 2; i <= NF; i++) if ($i == "dec") col = i - 1; next }
             col && $col ~ /^[0-9]+$/ { n++; s += $col; if ($col > m) m = $col }
             END { if (n) printf "NVDEC utilisation during the bench: mean %.0f%%, max %d%% (%d samples, dmon)\n", s / n, m, n
                   else print "NVDEC utilisation: no dec column in nvidia-smi dmon -s u" }' "$WORK/dmon.txt"
    fi
    return $rc
}

step_compile() {
    if [ "$HAVE_GPU" != 1 ]; then echo "no GPU: compile vs eager is measured on the GPU here"; return 5; fi
    bench_json compile --preset paper --device cuda --data "$DATA" --seconds 3 --only compile
}

step_eval() {
    if [ "$HAVE_GPU" != 1 ]; then echo "no GPU: evaluation clips/s is measured on the GPU here"; return 5; fi
    bench_json eval --preset paper --device cuda --data "$DATA" --seconds 3 --only eval
}

# pretrain_rate RUN_DIR WARM_STEPS: clips/s and data wait of a finished run, from its metrics.jsonl
# (intervals ending after WARM_STEPS; the first ones hold start-up and the loader's queue filling).
pretrain_rate() {
    "$PY" - "$1" "$2" <<'EOF'
import json, statistics, sys
run, warm = sys.argv[1], int(sys.argv[2])
rows = [json.loads(l) for l in open(f"{run}/metrics.jsonl") if l.strip()]
rows = [r for r in rows if "clips_per_s" in r]
kept = [r for r in rows if r["step"] > warm] or rows[-1:]
cfg = json.load(open(f"{run}/config.json"))
clips = statistics.median(r["clips_per_s"] for r in kept)
wait = statistics.median(r["data_wait_fraction"] for r in kept)
print(f"clips/s {clips:.1f} (median of {len(kept)} intervals after step {warm}; "
      f"min {min(r['clips_per_s'] for r in kept):.1f}, max {max(r['clips_per_s'] for r in kept):.1f}), "
      f"data wait {100 * wait:.1f}%, loader {cfg.get('loader')}, preset {cfg.get('preset')}, "
      f"batch {cfg.get('batch_size')}, precision {cfg.get('precision')}")
print(f"RATE {clips:.2f}")
EOF
}
export -f pretrain_rate

# ---- run them -------------------------------------------------------------------------------

say "fastssl gpu_check  $(date -Is)  host $(hostname)  budget ${TOTAL_S}s  outdir $OUT"
say "python: $($PY -c 'import sys; print(sys.executable, sys.version.split()[0])' 2>&1)  PYTHONPATH=${PYTHONPATH:-}"
while read -r name budget _; do
    case $name in ''|'#'*) continue ;; esac
    run_step "$name" "$budget"
    rc=$?
    if [ "$name" = torch ]; then
        if [ "$rc" = 0 ]; then HAVE_GPU=1; else say "         -> no usable GPU: GPU steps run as plumbing checks or skip"; fi
    fi
    log=$(printf "%s/%02d-%s.log" "$LOGS" "$N" "$name")
    [ -f "$log" ] || continue
    case $name in
        syncdebug|torchrun|determinism)
            grep -E '^(syncdebug |torchrun --nproc|determinism:|\(default\)|--deterministic)' "$log" \
                | cut -c1-220 | sed 's/^/    /' >>"$SUMMARY" ;;
        bench|compile|eval)
            grep -v '^\s*$' "$log" | sed -n '/^\(bench ratios:\|NVDEC\)/,$p' >>"$SUMMARY" ;;
    esac
done <<<"$STEPS"
exit 0
