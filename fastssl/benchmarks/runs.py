"""The real code, timed: `run.run` in this process (end to end), `fastssl pretrain` under torchrun
with 1 or 2 processes (data parallel), `evaluation.classify_videos` over the test split. Training
figures are what the loop itself logs per interval (clips/s, data wait); the first intervals
hold start-up and the loader's queue filling, and are reported apart ("warmup")."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fastssl.benchmarks.common import config, dataset, sync, timed
from fastssl.benchmarks.machine import usable_cores
from fastssl.benchmarks.stats import rate_stats, scaled, summarize


def schedule(spec: dict, loader: str, workers: int) -> tuple[int, int, int]:
    """(steps, warm-up steps, log_every): spec["steps"] timed steps in about 8 log intervals, after
    a warm-up in whole intervals of the batches the loader holds ready before anyone asks (PyAV:
    prefetch_factor 4 per worker; DALI: its queue per pipeline) plus one: they pile up while the
    first step is slow, and draining them at memory speed would inflate the first timed steps."""
    from fastssl.data import loaders
    queued = loaders.get("dali").PREFETCH * spec.get("decoders", 1) if loader == "dali" else 4 * max(workers, 1)
    log_every = max(1, int(spec.get("steps", 20)) // 8)
    warm = -(-(queued + 1) // log_every) * log_every
    return warm + -(-int(spec.get("steps", 20)) // log_every) * log_every, warm, log_every


def intervals(records: list[dict], warm: int, N: int | None) -> dict:
    """The logged intervals after `warm` steps, summarised."""
    rows = [r for r in records if "clips_per_s" in r]
    kept = [r for r in rows if r["step"] > warm]
    if not kept:
        raise RuntimeError(f"no interval after the {warm} warm-up steps was logged ({len(rows)} in all)")
    clips = summarize([r["clips_per_s"] for r in kept], "clips/s")
    out = {"metric": clips, "data_wait_fraction": summarize([r["data_wait_fraction"] for r in kept], "fraction"),
           "warmup": [r for r in rows if r["step"] <= warm]}
    if N:
        out["questions_per_s"] = scaled(clips, 1.0 / N, "questions/s")
    if "data_wait_fraction_max" in kept[0]:  # data parallel: the slowest rank's wait
        out["data_wait_fraction_max"] = summarize([r["data_wait_fraction_max"] for r in kept], "fraction")
    return out


def e2e(spec: dict, command: str) -> dict:
    """`run.run` with the task of `command` (pretrain | finetune), as the command runs it."""
    from fastssl.train.run import run
    from fastssl.train.run_setup import RunSetup
    from fastssl.train.runlog import read_metrics
    from fastssl.train.tasks import TASKS

    loader = spec.get("e2e_loader", "pyav")
    steps, warm, log_every = schedule(spec, loader, spec["workers"])
    run_dir = Path(spec["workdir"]) / f"e2e-{command}"
    cfg = config(spec, command, loader=loader, steps=steps, log_every=log_every, ckpt_every=10**9,
                 eval_questions=1, eval_every=0, out=str(run_dir))
    notes: list[str] = []
    run(TASKS[command], RunSetup(cfg, dataset(cfg, notes), force=True), progress=False, report=notes.append)
    return {**intervals(read_metrics(run_dir), warm, cfg.N if command == "pretrain" else None), "steps": steps,
            "warmup_steps": warm, "log_every": log_every, "loader": loader, "notes": notes}


def global_batch(batch: int, ranks: int) -> int:
    """The largest global batch <= `batch` that `ranks` split with >= 2 each (BatchNorm)."""
    if batch // ranks < 2:
        raise ValueError(f"a global batch of {batch} cannot give {ranks} ranks 2 each (BatchNorm): --batch-size")
    return batch - batch % ranks


def launch_line(spec: dict, ranks: int, *, out: str, batch: int, steps: int, log_every: int, workers: int,
                loader: str) -> list[str]:
    """The command a user types (torchrun = python -m torch.distributed.run)."""
    args = ["pretrain", "--data", spec["data"], "--out", out, "--force", "--preset", spec["preset"],
            "--device", spec["device"], "--precision", spec["precision"], "--mode", spec.get("mode", "rp"),
            "--loader", loader, "--workers", workers, "--decoders", spec.get("decoders", 1), "--batch-size", batch,
            "--steps", steps, "--log-every", log_every, "--ckpt-every", 10**9, "--seed", spec.get("seed", 0)]
    resize = "x".join(map(str, spec["resize"])) if spec.get("resize") else None
    args += [a for flag, v in (("--size", spec.get("size")), ("--width", spec.get("width")), ("--resize", resize))
             if v for a in (flag, v)]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
            "-m", "fastssl", *map(str, args)]


def data_parallel(spec: dict, ranks: int) -> dict:
    """clips/s (summed over ranks by the loop) of `fastssl pretrain` under torchrun with `ranks`
    processes on the same global batch. Each rank gets an equal share of the host: cores/ranks
    threads and workers/ranks loader workers, so 1 and 2 ranks spend the same cores two ways.
    A run still going near the deadline is killed; the intervals it logged still count."""
    from fastssl.config import PRESETS
    from fastssl.train.runlog import read_metrics

    requested = spec.get("batch_size") or PRESETS[spec["preset"]]["batch_size"]
    batch = global_batch(requested, ranks)
    notes = [f"global batch {batch}, not {requested}: it must divide by {ranks} ranks"] if batch != requested else []
    threads = int(spec.get("main_threads") or max(1, usable_cores() // ranks))
    workers = max(1, spec["workers"] // ranks) if spec["workers"] else 0
    loader = spec.get("e2e_loader", "pyav")
    steps, warm, log_every = schedule(spec, loader, workers)
    run_dir, log = Path(spec["workdir"]) / f"dp-{ranks}", Path(spec["workdir"]) / f"dp-{ranks}.log"
    command = launch_line(spec, ranks, out=str(run_dir), batch=batch, steps=steps, log_every=log_every,
                          workers=workers, loader=loader)
    env = {"MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo", **os.environ, "OMP_NUM_THREADS": str(threads)}
    deadline, killed = spec.get("_deadline"), False
    with open(log, "w") as f:
        proc = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
        try:
            proc.wait(timeout=None if deadline is None else max(1.0, deadline - 3 - time.perf_counter()))
        except subprocess.TimeoutExpired:
            killed = True  # at the component's deadline: the intervals logged by then still count
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # torchrun, its ranks and their loader workers
                proc.wait()
    if proc.returncode != 0 and not killed:
        raise RuntimeError(f"torchrun exited {proc.returncode}:\n{log.read_text(errors='replace')[-2500:]}")
    try:
        figures = intervals(read_metrics(run_dir), warm, PRESETS[spec["preset"]]["N"])
    except RuntimeError as e:
        raise RuntimeError(f"{e}" + ("; killed at the component's deadline (time budget)" if killed else "")) from None
    return {**figures, "ranks": ranks, "backend": "nccl" if spec["device"].startswith("cuda") else "gloo",
            "global_batch": batch, "per_rank_batch": batch // ranks, "threads_per_rank": threads,
            "workers_per_rank": workers, "loader": loader, "steps": steps, "warmup_steps": warm, "killed": killed,
            "log_every": log_every, "exit_status": proc.returncode,
            "launch": " ".join(["torchrun"] + command[3:]), "notes": notes}


def evaluation(spec: dict) -> dict:
    """Clips/s of `evaluation.classify_videos` (every non-overlapping D-frame clip of each test
    video, many clips per forward) with a fresh classifier; one sample = one pass."""
    from fastssl.train.evaluation import classify_videos
    from fastssl.train.tasks import TASKS

    cfg = config(spec, "finetune", loader=spec.get("e2e_loader", "pyav"))
    notes: list[str] = []
    ds = dataset(cfg, notes)
    model = TASKS["finetune"].build_model(cfg, ds)

    def one_pass():
        per_video = classify_videos(model, cfg, ds.test, progress=False)
        sync(cfg.device)
        return sum(v["clips"] for v in per_video)

    clips = one_pass()  # warm-up: first forward, clip builder imports
    return {"metric": rate_stats(timed(spec, one_pass, warmup=0), "clips/s"), "videos": len(ds.test),
            "clips_per_pass": clips, "batch_size": cfg.batch_size, "loader": cfg.loader, "notes": notes}
