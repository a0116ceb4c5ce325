"""Run the whole benchmark: the dataset, the components (one process each, one after another -
side by side they would share the CPU - in the registry's priority order, each bounded by the
budget left), the ratios, the printed table and the JSON file."""
from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from fastssl.benchmarks.isolation import spawn
from fastssl.benchmarks.machine import machine_info
from fastssl.benchmarks.registry import GROUPS, REGISTRY, applicability
from fastssl.benchmarks.report import format_report, one_line
from fastssl.files import atomic_write

SCHEMA = "fastssl-bench/2"
RESERVE_S = 2.0      # kept back for the table and the JSON
MIN_START_S = 6.0    # no component starts with less than this left (its imports take seconds)

# name -> (numerator, denominator, meaning[, (comparison, target)]). A side is "component" (its
# metric's median), "component:path" (a field, or a summary's median), or "best" (the faster loader).
RATIOS = {
    "loader_vs_baseline": ("best", "loader.baseline", "fastssl's best loader / baseline, questions/s", (">=", 1.5)),
    "e2e_vs_model": ("e2e.pretrain", "model.pretext", "real pretrain loop / model-only, clips/s"),
    "e2e_finetune_vs_model": ("e2e.finetune", "model.finetune", "real finetune loop / model-only, clips/s"),
    "loader_vs_model": ("best", "model.pretext:questions_per_s", "best loader / model-only, questions/s"),
    "baseline_vs_model": ("loader.baseline", "model.pretext:questions_per_s", "baseline / model-only, questions/s"),
    "dali_vs_pyav": ("loader.dali", "loader.pyav", "DALI loader / PyAV loader, questions/s"),
    "host_vs_gpu_finetune_pyav": ("host.finetune.pyav:host_vs_gpu", None, "host / GPU ms, paper fine-tune step, PyAV",
                                  ("<=", 0.2)),
    "host_vs_gpu_finetune_dali": ("host.finetune.dali:host_vs_gpu", None, "the same, DALI", ("<=", 0.2)),
    "host_vs_gpu_pretrain_pyav": ("host.pretrain.pyav:host_vs_gpu", None, "host / GPU ms per paper pretext step, PyAV"),
    "host_vs_gpu_pretrain_dali": ("host.pretrain.dali:host_vs_gpu", None, "the same, DALI"),
    "chunk_gap_vs_median": ("loader.dali:chunk_boundaries.gap_vs_median", None,
                            "DALI: largest step gap at a reader chunk boundary / median step"),
    "dp_2_vs_1": ("dp.2", "dp.1", "torchrun pretrain, 2 processes / 1, clips/s, same global batch"),
    "compiled_vs_eager_finetune": ("compile.finetune:compiled_vs_eager", None, "torch.compile / eager, fine-tune step"),
    "compiled_vs_eager_pretext": ("compile.pretext:compiled_vs_eager", None, "torch.compile / eager, pretext step"),
    "op_triton_vs_copy": ("op.triton", "op.copy", "Triton clip builder GB/s / device copy GB/s"),
    "op_reference_vs_copy": ("op.reference", "op.copy", "torch reference clip builder GB/s / device copy GB/s"),
}


def compute_ratios(components: dict) -> tuple[dict, dict]:
    """Every ratio in RATIOS as a plain number (None when a side is missing), and details."""
    def value(ref):
        if ref is None:
            return 1.0
        if ref == "best":
            return max(filter(None, (value("loader.pyav"), value("loader.dali"))), default=None)
        name, _, path = ref.partition(":")
        x = components.get(name) or {}
        if x.get("status") != "ok":
            return None
        for key in (path or "metric").split("."):
            x = x.get(key) if isinstance(x, dict) else None
        return x.get("median") if isinstance(x, dict) else x

    ratios = {}
    for key, (num, den, *_) in RATIOS.items():
        a, b = value(num), value(den)
        ratios[key] = a / b if a is not None and b else None
    loaders = {n: value(n) for n in ("loader.pyav", "loader.dali") if value(n) is not None}
    details = {"best_loader": max(loaders, key=loaders.get) if loaders else None,
               "e2e_data_wait_fraction": value("e2e.pretrain:data_wait_fraction"),
               "dp_2_efficiency": ratios["dp_2_vs_1"] / 2 if ratios["dp_2_vs_1"] else None}
    return ratios, details


def _dataset(run: dict, device: str, seed: int, work: Path, echo) -> dict:
    from fastssl.data.dataset import load_dataset
    from fastssl.data.synth import make_synthetic_dataset
    codec = None if run.get("data") else run.get("codec") or ("h264" if device.startswith("cuda") else "vp9")
    path = str(Path(run["data"]).resolve()) if run.get("data") else str(work / "data")
    ds = load_dataset(path) if run.get("data") else make_synthetic_dataset(
        path, classes=run["classes"], videos_per_class=run["videos_per_class"], frames=run["frames"],
        size=tuple(run["video_size"]), codec=codec, seed=seed, progress=False)
    info = {"path": path, "generated": codec is not None, "videos": len(ds.train) + len(ds.test),
            "train_videos": len(ds.train), "codec": codec or ",".join(sorted({v.codec for v in ds.train + ds.test}))}
    if codec:
        echo(f"dataset: {info['videos']} {codec} videos generated ({info['train_videos']} train)")
    return info


def run_bench(spec: dict, run: dict, json_path, *, echo: Callable[[str], None] = print, argv=None) -> dict:
    """Run every component `run["groups"]` asks for within `run["time_budget"]` seconds; write the
    JSON to `json_path` after every component (a killed run still leaves what it measured)."""
    from fastssl.data.loaders import choose_loader
    t_start = time.perf_counter()
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fastssl-bench-"))
    (work / "logs").mkdir()
    doc = {"schema": SCHEMA, "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "command": argv, "machine": machine_info(), "settings": {**spec, **run}, "dataset": None, "components": {},
           "ratios": {}, "workdir": str(work) if run.get("keep") else None}

    def left() -> float:
        return run["time_budget"] - (time.perf_counter() - t_start)

    def record(name: str | None = None, entry: dict | None = None) -> None:
        if name:
            doc["components"][name] = entry
        doc["ratios"], doc["ratio_details"] = compute_ratios(doc["components"])
        doc["total_seconds"] = round(time.perf_counter() - t_start, 1)
        atomic_write(json_path, json.dumps(doc, indent=2, default=str) + "\n")

    try:
        doc["dataset"] = _dataset(run, spec["device"], spec.get("seed", 0), work, echo)
        codecs = set(doc["dataset"]["codec"].split(","))
        loader = choose_loader("auto", spec["device"])
        if loader == "dali" and applicability("loader.dali", spec["device"], codecs):
            loader = "pyav"
        spec = {**spec, "data": doc["dataset"]["path"], "workdir": str(work), "e2e_loader": loader, "min_samples": 3}
        fmt = {"workers": spec["workers"], "device": spec["device"], "steps": spec["steps"], "e2e_loader": loader}
        todo = []
        for name, c in REGISTRY.items():
            if (c.group in run["groups"] or name in run["groups"]) and name not in run.get("drop", ()):
                entry = {"group": c.group, "title": c.title.format(**fmt)}
                why = applicability(name, spec["device"], codecs)
                if why:
                    record(name, {**entry, "status": "skipped", "reason": why})
                    echo(f"  skip {name}: {why}")
                else:
                    todo.append((name, entry))
        for k, (name, entry) in enumerate(todo, 1):
            budget = left() - RESERVE_S
            if budget < MIN_START_S:
                echo(f"[{k:2d}/{len(todo)}] {name}: skipped, time budget spent")
                record(name, {**entry, "status": "skipped", "reason": "time budget spent before it could start"})
                continue
            cap = budget if entry["group"] in ("e2e", "dp", "compile") else min(budget, 10 * spec["seconds"] + 90)
            echo(f"[{k:2d}/{len(todo)}] {name}: {entry['title']} ...")
            record(name, {**entry, **spawn(name, {**spec, "deadline_s": max(1.0, cap - 8.0)}, cap, work / "logs")})
            echo("        " + one_line(doc["components"][name]))
    finally:
        doc["load_average_end"] = list(os.getloadavg())
        by_group = sorted(doc["components"].items(), key=lambda item: GROUPS.index(REGISTRY[item[0]].group))
        doc["components"] = dict(by_group)  # the table's order (stable: priority within a group)
        if not run.get("keep"):
            shutil.rmtree(work, ignore_errors=True)
            for c in doc["components"].values():
                c.pop("log", None)
        record()
    echo("")
    echo(format_report(doc))
    echo(f"JSON: {json_path}   ({doc['total_seconds']:.0f} s in all)")
    return doc
