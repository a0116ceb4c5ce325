"""Data-parallel scaling: the real `fastssl pretrain` command under torchrun with K processes on
the same global batch, its clips/s (summed over ranks by the loop) read from metrics.jsonl.

    python -m torch.distributed.run --standalone --nproc-per-node K -m fastssl pretrain ...

That is `torchrun`, with this interpreter: the CLI, run setup, DDP wrapping, per-rank loaders
and metric reduction are exactly what a user's launch runs. Every rank gets an equal share of
the host: OMP_NUM_THREADS = cores / K and PyAV workers = workers / K (at least 1 when any), so
K = 1 and K = 2 on one CPU compare two ways of spending the same cores. NCCL on CUDA (one GPU
per rank, LOCAL_RANK), gloo on the CPU (MASTER_ADDR=127.0.0.1, GLOO_SOCKET_IFNAME=lo unless set).

The first logging intervals hold torchrun's start-up, the process group, the loaders' start-up
and their prefetch queues; they are reported apart ("warmup") and left out of the figure. A run
still going at the component's deadline is killed; the intervals it logged by then still count
(noted), so a tight budget gives fewer samples rather than none.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fastssl.benchmarks.common import prefetched_batches
from fastssl.benchmarks.machine import usable_cores
from fastssl.benchmarks.stats import scaled, summarize

KILL_MARGIN_S = 3.0  # the run is killed this long before the component's deadline


def visible_gpus() -> int:
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def ranks_for(which, device: str) -> int:
    """`which` = an int (that many processes) or "gpus" (one per visible GPU)."""
    if which == "gpus":
        if not device.startswith("cuda"):
            raise ValueError("dp.gpus runs one process per GPU: CUDA only")
        return visible_gpus()
    return int(which)


def global_batch(batch: int, ranks: int) -> int:
    """The largest global batch <= `batch` that K ranks can split with >= 2 each (BatchNorm)."""
    fitted = batch - batch % ranks
    if fitted // ranks < 2:
        raise ValueError(f"a global batch of {batch} cannot be split over {ranks} ranks with at least "
                         f"2 each (BatchNorm); pass a larger --batch-size")
    return fitted


def launch_line(spec: dict, ranks: int, *, out: str, batch: int, steps: int, log_every: int,
                workers: int, loader: str) -> list[str]:
    """The command a user would type (torchrun = python -m torch.distributed.run)."""
    args = ["pretrain", "--data", spec["data"], "--out", out, "--force", "--preset", spec["preset"],
            "--device", spec["device"], "--precision", spec["precision"], "--mode", spec.get("mode", "rp"),
            "--loader", loader, "--workers", workers, "--decoders", spec.get("decoders", 1),
            "--batch-size", batch, "--steps", steps, "--log-every", log_every, "--ckpt-every", 10**9,
            "--seed", spec.get("seed", 0)]
    if spec.get("size"):
        args += ["--size", spec["size"]]
    if spec.get("resize"):
        args += ["--resize", "x".join(str(v) for v in spec["resize"])]
    if spec.get("width"):
        args += ["--width", spec["width"]]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
            "-m", "fastssl", *map(str, args)]


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun, its ranks and their loader workers
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _tail(path: Path, n: int = 2500) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def pretrain(spec: dict, which) -> dict:
    """clips/s of `fastssl pretrain` under torchrun with `which` processes (see the module doc)."""
    from fastssl.config import PRESETS

    device = spec["device"]
    ranks = ranks_for(which, device)
    if ranks < 1:
        raise RuntimeError("no GPU visible")
    requested = spec.get("batch_size") or PRESETS[spec["preset"]]["batch_size"]
    batch = global_batch(requested, ranks)
    notes: list[str] = []
    if batch != requested:
        notes.append(f"global batch {batch}, not {requested}: it must divide by {ranks} ranks")
    cores = usable_cores()
    threads = int(spec.get("main_threads") or max(1, cores // ranks))
    total_workers = int(spec.get("workers", 0))
    workers = max(1, total_workers // ranks) if total_workers else 0
    if workers * ranks != total_workers:
        notes.append(f"{workers} loader workers per rank ({workers * ranks} in all, not {total_workers}): "
                     f"{total_workers} do not split evenly over {ranks} ranks")
    loader = spec.get("e2e_loader", "pyav")
    measured = int(spec.get("steps", 20))
    log_every = max(1, measured // 8)
    # warm-up: start-up plus one rank's prefetch queue, in whole logging intervals
    warm = prefetched_batches(loader, workers, spec.get("decoders", 1)) + 1
    warm = -(-warm // log_every) * log_every
    steps = warm + -(-measured // log_every) * log_every
    run_dir = Path(spec["workdir"]) / f"dp-{ranks}"
    log = Path(spec["workdir"]) / f"dp-{ranks}.log"
    command = launch_line(spec, ranks, out=str(run_dir), batch=batch, steps=steps, log_every=log_every,
                          workers=workers, loader=loader)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.setdefault("MASTER_ADDR", "127.0.0.1")
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    deadline = spec.get("_deadline")
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
        killed = False
        try:
            proc.wait(timeout=None if deadline is None else max(1.0, deadline - KILL_MARGIN_S - time.perf_counter()))
        except subprocess.TimeoutExpired:
            killed = True
            _kill(proc)
        except BaseException:
            _kill(proc)
            raise
    wall = time.perf_counter() - t0
    metrics = run_dir / "metrics.jsonl"
    rows = []
    for line in metrics.read_text().splitlines() if metrics.exists() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by the kill
            pass
    rows = [r for r in rows if "clips_per_s" in r]
    kept = [r for r in rows if r["step"] > warm]
    if not killed and proc.returncode != 0:
        raise RuntimeError(f"torchrun exited {proc.returncode}:\n{_tail(log)}")
    if not kept:
        why = f"killed at the deadline after {wall:.0f} s" if killed else "finished"
        raise RuntimeError(f"no interval after the {warm} warm-up steps was logged ({why}; "
                           f"{len(rows)} intervals in all):\n{_tail(log)}")
    if killed:
        notes.append(f"killed at the component's deadline after {wall:.0f} s, at step "
                     f"{rows[-1]['step']} of {steps}: {len(kept)} timed intervals")
    clips = summarize([r["clips_per_s"] for r in kept], "clips/s")
    out = {"metric": clips,
           "questions_per_s": scaled(clips, 1.0 / PRESETS[spec["preset"]]["N"], "questions/s"),
           "data_wait_fraction": summarize([r["data_wait_fraction"] for r in kept], "fraction"),
           "ranks": ranks, "backend": "nccl" if device.startswith("cuda") else "gloo",
           "global_batch": batch, "per_rank_batch": batch // ranks, "threads_per_rank": threads,
           "workers_per_rank": workers, "loader": loader,
           "steps": steps, "warmup_steps": warm, "log_every": log_every,
           "warmup": [r for r in rows if r["step"] <= warm],
           "exit_status": None if killed else proc.returncode, "killed_at_deadline": killed,
           "wall_seconds_incl_startup": round(wall, 1),
           "launch": " ".join(["torchrun"] + command[3:]), "notes": notes}
    if rows and "data_wait_fraction_max" in kept[0]:
        out["data_wait_fraction_max"] = summarize([r["data_wait_fraction_max"] for r in kept], "fraction")
    return out
