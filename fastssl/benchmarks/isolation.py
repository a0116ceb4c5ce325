"""Each component in a process of its own, under a hard time limit.

Components run in fresh processes forked from a server that has already imported torch, the
data path and the models (multiprocessing's forkserver): a component starts without paying for
those imports again, and still has a process (and a peak RSS) of its own. The server never
touches CUDA or DALI, so every child can. Where forkserver does not exist, each component is
a new interpreter (`python -m fastssl.benchmarks.run_component`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

PRELOAD = ["numpy", "torch", "torch._dynamo", "av", "fastssl.kernels", "fastssl.data.pyav_loader",
           "fastssl.train.pretrain", "fastssl.train.finetune", "fastssl.train.run_setup",
           "fastssl.benchmarks.components",
           "fastssl.benchmarks.baseline", "fastssl.benchmarks.loader_bench", "fastssl.benchmarks.training",
           "fastssl.benchmarks.op_bench", "fastssl.benchmarks.decoding",
           "fastssl.benchmarks.parallel", "fastssl.benchmarks.run_component"]


def _context():
    import multiprocessing as mp
    if "forkserver" not in mp.get_all_start_methods():
        return None
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def _child(name: str, spec_json: str, log: str, conn) -> None:
    """Runs in the forked process: own session (so a timeout kills its DataLoader workers too),
    output to the log file, the result back through the pipe."""
    import multiprocessing as mp
    # A forkserver child inherits "forkserver" as its default start method; the real loops run
    # with the platform's default (fork on Linux), and so must this child's DataLoader workers.
    mp.set_start_method(mp.get_all_start_methods()[0], force=True)
    os.setsid()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from fastssl.benchmarks.run_component import run
    conn.send(json.dumps(run(name, json.loads(spec_json))))
    conn.close()


def _kill_group(pid: int) -> None:
    import signal
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def spawn(name: str, spec: dict, timeout: float, log_dir: Path) -> dict:
    """Run one component in a process of its own; its output goes to a log file."""
    log = log_dir / f"{name}.log"
    t0 = time.perf_counter()
    ctx = _context()
    if ctx is None:
        return _spawn_interpreter(name, spec, timeout, log)
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(name, json.dumps(spec), str(log), send), daemon=False)
    proc.start()
    send.close()
    result = None
    try:
        if recv.poll(timeout):
            result = json.loads(recv.recv())
    except (EOFError, OSError):
        pass  # the child died without a result (crash, killed for memory)
    finally:
        if result is None:
            _kill_group(proc.pid)
        proc.join(15)
        if proc.is_alive():
            _kill_group(proc.pid)
            proc.join()
        recv.close()
    wall = round(time.perf_counter() - t0, 2)
    if result is None:
        if wall >= timeout:
            return {"status": "timeout", "reason": f"killed after {timeout:.0f} s (time budget)",
                    "seconds": wall, "log": str(log)}
        tail = log.read_text()[-1500:] if log.exists() else ""
        return {"status": "error", "error": f"the process died (exit status {proc.exitcode}) without a result",
                "stderr_tail": tail, "wall_seconds": wall, "log": str(log)}
    result["wall_seconds"] = wall
    result["log"] = str(log)
    return result


def _spawn_interpreter(name: str, spec: dict, timeout: float, log: Path) -> dict:
    cmd = [sys.executable, "-m", "fastssl.benchmarks.run_component", name, "--json", json.dumps(spec)]
    t0 = time.perf_counter()
    with open(log, "w") as err:
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, timeout=timeout,
                                  start_new_session=True)
        except subprocess.TimeoutExpired:
            return {"status": "timeout", "reason": f"killed after {timeout:.0f} s (time budget)",
                    "seconds": round(time.perf_counter() - t0, 1), "log": str(log)}
    wall = round(time.perf_counter() - t0, 2)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = log.read_text()[-1500:] if log.exists() else ""
        return {"status": "error", "error": f"exit status {proc.returncode}, no result", "stderr_tail": tail,
                "wall_seconds": wall, "log": str(log)}
    result = json.loads(lines[-1])
    result["wall_seconds"] = wall  # includes interpreter start and imports
    result["log"] = str(log)
    return result
