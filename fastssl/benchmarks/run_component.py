"""Run one benchmark component in this (fresh) process and print its result as one JSON line.

    python -m fastssl.benchmarks.run_component loader.pyav --json '{"data": ..., ...}'

Why a process per component: peak RSS (ru_maxrss) only ever grows within a process, CUDA and
DALI keep pools and threads, and a DataLoader's workers are children of whoever started them.
In a fresh process each component's peak host and device memory is its own.

Output: the JSON result goes to the original stdout, alone; anything else that writes to fd 1
(libraries, C code) is redirected to stderr so it cannot corrupt it. Exit status 0 when the
component ran, 1 when it raised (the JSON then holds status "error" and the message).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import traceback


def _peak_rss_mb(who: int) -> float:
    # Linux reports ru_maxrss in KiB (macOS in bytes).
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20
    return round(resource.getrusage(who).ru_maxrss * scale, 1)


def _device_memory() -> dict:
    import torch
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    free, total = torch.cuda.mem_get_info()
    return {"device_peak_allocated_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
            "device_peak_reserved_mb": round(torch.cuda.max_memory_reserved() / 2**20, 1),
            "device_used_at_end_mb": round((total - free) / 2**20, 1)}


def run(name: str, spec: dict) -> dict:
    from fastssl.benchmarks.components import REGISTRY

    t0 = time.perf_counter()
    if spec.get("deadline_s"):
        spec["_deadline"] = t0 + float(spec["deadline_s"])
    if name not in REGISTRY:
        raise SystemExit(f"unknown component {name!r}; choose from {sorted(REGISTRY)}")
    if spec.get("main_threads"):
        import torch
        torch.set_num_threads(int(spec["main_threads"]))
    try:
        result = REGISTRY[name].run(spec)
        result["status"] = "ok"
    except Exception as e:  # noqa: BLE001 - reported to the parent, which carries on
        result = {"status": "error", "error": f"{type(e).__name__}: {e}",
                  "traceback": traceback.format_exc()[-4000:]}
    result["component"] = name
    result["seconds"] = round(time.perf_counter() - t0, 2)
    result["peak_rss_mb"] = _peak_rss_mb(resource.RUSAGE_SELF)
    result["peak_rss_children_mb"] = _peak_rss_mb(resource.RUSAGE_CHILDREN)  # largest reaped worker
    result.update(_device_memory())
    result["load_average_1min"] = round(os.getloadavg()[0], 2)  # others' work skews timings
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--json", required=True, help="the spec, as a JSON object (or @file)")
    args = parser.parse_args(argv)
    text = args.json
    if text.startswith("@"):
        with open(text[1:]) as f:
            text = f.read()
    spec = json.loads(text)
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints (ours or C libraries') go to stderr, not into the JSON
    sys.stdout = sys.stderr
    result = run(args.name, spec)
    out.write(json.dumps(result) + "\n")
    out.flush()
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
