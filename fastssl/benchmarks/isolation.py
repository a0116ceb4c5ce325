"""Each component in a process of its own, under a hard time limit: peak RSS only ever grows
within a process, CUDA and DALI keep pools and threads, and a DataLoader's workers are children
of whoever started them. The processes are forked from a server that has already imported
torch, the data path and the models (forkserver): a component does not pay for those imports
again. The server never touches CUDA or DALI, so every child can."""
from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import resource
import signal
import time
import traceback
from pathlib import Path

PRELOAD = ["numpy", "torch", "torch._dynamo", "av", "fastssl.kernels", "fastssl.data.pyav_loader", "fastssl.train.run",
           *(f"fastssl.benchmarks.{m}" for m in ("registry", "baseline", "loader_bench", "model", "runs", "host"))]


def run_here(name: str, spec: dict) -> dict:
    """Run component `name` in this process: its result, status, time, memory and the load."""
    import torch

    from fastssl.benchmarks.registry import REGISTRY
    t0 = time.perf_counter()
    if spec.get("deadline_s"):
        spec["_deadline"] = t0 + float(spec["deadline_s"])
    if spec.get("main_threads"):
        torch.set_num_threads(int(spec["main_threads"]))
    try:
        result = {**REGISTRY[name].run(spec), "status": "ok"}
    except Exception as e:  # noqa: BLE001 - reported to the parent, which carries on
        result = {"status": "error", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-4000:]}
    result.update(component=name, seconds=round(time.perf_counter() - t0, 2),
                  # ru_maxrss is in KiB on Linux; the children's is the largest reaped worker's
                  peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  peak_rss_children_mb=round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
                  load_average_1min=round(os.getloadavg()[0], 2))  # others' work skews timings
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        result["device_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def _child(name: str, spec_json: str, log: str, conn) -> None:
    # A forkserver child inherits "forkserver" as its start method; the real loops run with the
    # platform's default (fork on Linux), and so must this child's DataLoader workers.
    mp.set_start_method(mp.get_all_start_methods()[0], force=True)
    os.setsid()  # its own process group: a timeout kills its workers too
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    conn.send(json.dumps(run_here(name, json.loads(spec_json))))
    conn.close()


def spawn(name: str, spec: dict, timeout: float, log_dir: Path) -> dict:
    """Run one component in a process of its own (output to LOG_DIR/NAME.log); killed past `timeout`."""
    log = Path(log_dir) / f"{name}.log"
    t0 = time.perf_counter()
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(name, json.dumps(spec), str(log), send))
    proc.start()
    send.close()
    result = None
    try:
        if recv.poll(timeout):
            result = json.loads(recv.recv())
    except (EOFError, OSError):
        pass  # the child died without a result (a crash, killed for memory)
    finally:
        if result is None or (proc.join(15) or proc.is_alive()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # the component and its loader workers
        proc.join()
        recv.close()
    wall = round(time.perf_counter() - t0, 2)
    if result is None:
        if wall >= timeout:
            return {"status": "timeout", "reason": f"killed after {timeout:.0f} s (time budget)", "log": str(log)}
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        return {"status": "error", "error": f"the process died (exit status {proc.exitcode}) without a result",
                "stderr_tail": tail, "log": str(log)}
    return {**result, "wall_seconds": wall, "log": str(log)}
