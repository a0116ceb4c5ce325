"""Run the whole benchmark: dataset, components (one subprocess each, under a time budget),
ratios, the printed table and the JSON file.

Components run one after another, never side by side (they would share the CPU and each
other's numbers would mean nothing), in priority order: what the headline ratios need first,
so a tight `time_budget` drops the extras, never the ratios. Each component's wall time is
bounded by the budget left (the subprocess is killed past it and reported as timed out).
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from fastssl.benchmarks.components import DEFAULT_GROUPS, REGISTRY, display_order
from fastssl.benchmarks.isolation import spawn
from fastssl.benchmarks.machine import describe, installed, machine_info
from fastssl.benchmarks.parallel import visible_gpus
from fastssl.benchmarks.report import format_report

SCHEMA = "fastssl-bench/1"
RESERVE_S = 2.0      # kept back for the table and the JSON
MIN_START_S = 6.0    # a component is not started with less than this left (its imports take seconds)


@dataclass
class Settings:
    device: str
    preset: str
    precision: str
    mode: str = "rp"
    batch_size: int | None = None
    workers: int = 2
    decoders: int = 1
    seed: int = 0
    size: int | None = None
    resize: tuple | None = None
    width: float | None = None
    seconds: float = 10.0           # measurement time per throughput component (after warm-up)
    warmup: int = 2                 # warm-up blocks / steps per component
    steps: int = 40                 # steps of each end-to-end run
    time_budget: float = 1200.0     # the whole run, dataset generation included
    groups: tuple = DEFAULT_GROUPS  # groups and/or single component names
    data: str | None = None         # an existing dataset; else a synthetic one is generated
    codec: str | None = None        # for the generated dataset (None: h264 on CUDA, vp9 on CPU)
    classes: int = 10
    videos_per_class: int = 6
    frames: int = 48
    video_size: tuple = (320, 240)  # (w, h) of the generated videos (UCF101's)
    keep: bool = False              # keep the temp folder (dataset, e2e run folders)
    profile_questions: int = 48
    repeats: int = 1                # runs of the loader.pyav / loader.baseline pair, alternating
    main_threads: int | None = None  # torch threads in each component's main process (None: default)
    drop: tuple = ()                # single components left out (--skip loader.dali, ...)


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _dali_reason(device: str, codecs: set) -> str | None:
    """Why the DALI loader cannot run here, or None."""
    from fastssl.data import loaders
    if not loaders.dali_available():
        return "nvidia-dali is not installed"
    try:
        dali = loaders.get("dali")
    except Exception as e:  # noqa: BLE001 - the loader package itself may be missing or broken
        return f"fastssl's DALI loader does not import: {e}"
    bad = codecs - set(dali.decodable_codecs(device))
    if bad:
        return (f"DALI on {device} cannot decode {', '.join(sorted(bad))} "
                f"(it decodes {', '.join(sorted(dali.decodable_codecs(device)))}; use --codec vp9 on a CPU)")
    return None


_HINTS = {"torchcodec": "pip install torchcodec (matching your torch; needs FFmpeg libraries)",
          "decord": "pip install decord"}


def unmet(need: str, s: Settings, codecs: set) -> str | None:
    """None if this host meets `need` (components.NEEDS), else the reason it does not."""
    cuda = s.device.startswith("cuda")
    if need == "dali":
        from fastssl.data.loaders import dali_available
        return None if dali_available() else "nvidia-dali is not installed"
    if need == "dali-codecs":
        return _dali_reason(s.device, codecs)
    if need == "cuda":
        return None if cuda else "needs a CUDA GPU (Triton on the CPU only runs in its interpreter)"
    if need == "cpu":
        return None if not cuda else ("CPU only (on CUDA the clip builder runs on the GPU, not in the "
                                      "main process's threads)")
    if need == "triton":
        from fastssl.kernels import triton_available
        return None if triton_available() else "triton does not import"
    if need in _HINTS:
        return None if installed(need) else f"{need} is not installed (not a dependency; {_HINTS[need]})"
    if need in ("ranks-2", "gpus-3+"):
        import torch.distributed
        if not torch.distributed.is_available():
            return "torch.distributed is not available in this torch build"
        gpus = visible_gpus() if cuda else 0
        if need == "ranks-2" and cuda and gpus < 2:
            return (f"{gpus} GPU visible: 2 data-parallel processes need 2 GPUs (the 1-process torchrun "
                    "run is dp.1; multi-GPU scaling is measured on a multi-GPU host)")
        if need == "gpus-3+" and gpus < 3:
            return ("needs CUDA with more than 2 GPUs (one process per GPU; 2 are dp.2)" if cuda
                    else "CUDA only (one process per GPU)")
        return None
    raise ValueError(f"unknown requirement {need!r}")


def applicability(name: str, s: Settings, codecs: set) -> str | None:
    """None if the component can run here, else the reason it is skipped (its first unmet need)."""
    for need in REGISTRY[name].needs:
        why = unmet(need, s, codecs)
        if why:
            return why
    return None


def _generate(s: Settings, root: Path, echo) -> dict:
    from fastssl.data.synth import make_synthetic_dataset
    codec = s.codec or ("h264" if s.device.startswith("cuda") else "vp9")
    t0 = time.perf_counter()
    ds = make_synthetic_dataset(root / "data", classes=s.classes, videos_per_class=s.videos_per_class,
                                frames=s.frames, size=tuple(s.video_size), codec=codec, seed=s.seed,
                                progress=False)
    seconds = time.perf_counter() - t0
    info = {"path": str(root / "data"), "generated": True, "codec": codec, "videos": len(ds.train) + len(ds.test),
            "train_videos": len(ds.train), "frames": s.frames, "size_wh": list(s.video_size),
            "seconds": round(seconds, 1)}
    echo(f"dataset: generated {info['videos']} {codec} videos ({info['train_videos']} train), "
         f"{s.video_size[0]}x{s.video_size[1]}, {s.frames} frames, in {seconds:.1f} s")
    return info


def _describe_data(path: str) -> dict:
    from fastssl.data.dataset import load_dataset
    ds = load_dataset(path)
    videos = ds.train + ds.test
    return {"path": str(Path(path).resolve()), "generated": False,
            "codec": ",".join(sorted({v.codec for v in videos})), "videos": len(videos),
            "train_videos": len(ds.train), "frames": sorted({v.frames for v in videos})[:5],
            "size_wh": sorted({(v.width, v.height) for v in videos})[:3]}


PAIR = ("loader.pyav", "loader.baseline")


def merge_repeats(results: list[dict]) -> dict:
    """Several runs of one component -> one record: block samples pooled into one summary,
    each run's median kept under "repeat_medians"."""
    from fastssl.benchmarks.stats import scaled, summarize
    ok = [r for r in results if r.get("status") == "ok"]
    if len(results) == 1 or not ok:
        return results[-1]
    merged = dict(ok[0])
    unit = ok[0]["metric"]["unit"]
    samples = [x for r in ok for x in r["metric"].get("samples", [])]
    metric = summarize(samples, unit)
    metric["samples"] = samples
    metric["aggregate"] = None
    per_q = {"clips_per_s": ("clips/s", "clips_per_s"), "frames_decoded_per_s": ("frames/s", "frames_decoded_per_s")}
    for key, (u, _) in per_q.items():
        if key in merged and merged[key].get("median") and ok[0]["metric"].get("median"):
            merged[key] = scaled(metric, merged[key]["median"] / ok[0]["metric"]["median"], u)
    merged["metric"] = metric
    merged["repeat_medians"] = [r["metric"]["median"] for r in ok]
    merged["repeats"] = len(results)
    merged["seconds"] = round(sum(r.get("seconds") or 0 for r in results), 2)
    merged["wall_seconds"] = round(sum(r.get("wall_seconds") or 0 for r in results), 2)
    for key in ("peak_rss_mb", "peak_rss_children_mb", "device_peak_allocated_mb"):
        values = [r[key] for r in ok if r.get(key) is not None]
        if values:
            merged[key] = max(values)
    return merged


def compute_ratios(components: dict) -> tuple[dict, dict]:
    """The figures that matter, as plain numbers (None when a side is missing), with details."""
    def med(name, key="metric"):
        c = components.get(name) or {}
        if c.get("status") != "ok":
            return None
        return (c.get(key) or {}).get("median")

    def div(a, b):
        return a / b if a is not None and b not in (None, 0) else None

    loaders = {n: med(n) for n in ("loader.pyav", "loader.dali")}
    best = max((n for n in loaders if loaders[n] is not None), key=lambda n: loaders[n], default=None)
    best_q = loaders.get(best) if best else None
    model_q = med("model.pretext", "questions_per_s")
    ops = {n: med(n) for n in ("op.triton", "op.reference", "op.dali")}
    copy = med("op.copy")
    ratios = {
        "loader_vs_baseline": div(best_q, med("loader.baseline")),
        "e2e_vs_model": div(med("e2e.pretrain"), med("model.pretext")),
        "e2e_finetune_vs_model": div(med("e2e.finetune"), med("model.finetune")),
        "dali_vs_pyav": div(loaders["loader.dali"], loaders["loader.pyav"]),
        "torchcodec_vs_pyav_decode": div(med("peer.torchcodec"), med("peer.pyav")),
        "decord_vs_pyav_decode": div(med("peer.decord"), med("peer.pyav")),
        "pyav_1thread_vs_baseline": div(med("loader.pyav-1t"), med("loader.baseline")),
        "loader_vs_model": div(best_q, model_q),
        "baseline_vs_model": div(med("loader.baseline"), model_q),
        "op_triton_vs_copy": div(ops["op.triton"], copy),
        "op_reference_vs_copy": div(ops["op.reference"], copy),
        "op_dali_vs_copy": div(ops["op.dali"], copy),
        "dp_2_vs_1": div(med("dp.2"), med("dp.1")),
        "dp_gpus_vs_1": div(med("dp.gpus"), med("dp.1")),
    }
    wait = (components.get("e2e.pretrain") or {}).get("data_wait_fraction") or {}
    details = {
        "best_loader": best,
        "loader_vs_baseline": "fastssl's best loader on this device / baseline, questions/s (medians)",
        "e2e_vs_model": "real pretrain loop clips/s / model-only pretext clips/s (medians)",
        "loader_vs_model": "best loader questions/s / model-only questions/s: > 1 means the loader "
                           "alone can feed the model",
        "baseline_vs_model": "baseline questions/s / model-only questions/s",
        "op_*_vs_copy": "clip builder GB/s / the device's copy GB/s measured in the same run",
        "e2e_data_wait_fraction": wait.get("median"),
        "dp_*_vs_1": "torchrun pretrain with K processes / with 1, clips/s (medians), same global batch; "
                     "the scaling efficiency is that ratio / K",
    }
    for name in ("dp.2", "dp.gpus"):
        c = components.get(name) or {}
        ratio = ratios["dp_2_vs_1" if name == "dp.2" else "dp_gpus_vs_1"]
        if ratio is not None and c.get("ranks"):
            details[f"{name.replace('.', '_')}_ranks"] = c["ranks"]
            details[f"{name.replace('.', '_')}_efficiency"] = ratio / c["ranks"]
    a = (components.get("loader.pyav") or {}).get("repeat_medians") or []
    b = (components.get("loader.baseline") or {}).get("repeat_medians") or []
    if a and b:
        details["pyav_vs_baseline_per_repeat"] = [x / y for x, y in zip(a, b) if y]
    return ratios, details


def run_bench(s: Settings, json_path: str | os.PathLike, *, echo: Callable[[str], None] = print,
              argv: list | None = None) -> dict:
    """Run everything `s` asks for within `s.time_budget` seconds; write JSON to `json_path`
    after every component (a killed run still leaves what it measured); return the document."""
    t_start = time.perf_counter()
    json_path = Path(json_path)
    work = Path(tempfile.mkdtemp(prefix="fastssl-bench-"))
    logs = work / "logs"
    logs.mkdir()
    info = machine_info()
    echo(f"machine: {describe(info)}")
    doc = {"schema": SCHEMA, "date": _now(), "command": argv, "machine": info,
           "settings": dict(vars(s)), "dataset": None,
           "components": {}, "ratios": {}, "notes": [], "workdir": str(work) if s.keep else None}

    def left() -> float:
        return s.time_budget - (time.perf_counter() - t_start)

    try:
        if s.data:
            doc["dataset"] = _describe_data(s.data)
            data = doc["dataset"]["path"]
        else:
            doc["dataset"] = _generate(s, work, echo)
            data = doc["dataset"]["path"]
        codecs = set(str(doc["dataset"]["codec"]).split(","))
        from fastssl.data.loaders import choose_loader
        e2e_loader = choose_loader("auto", s.device)
        if e2e_loader == "dali" and _dali_reason(s.device, codecs):
            e2e_loader = "pyav"
        spec = {"data": data, "preset": s.preset, "device": s.device, "precision": s.precision,
                "mode": s.mode, "batch_size": s.batch_size, "workers": s.workers, "decoders": s.decoders,
                "seed": s.seed, "size": s.size, "resize": list(s.resize) if s.resize else None,
                "width": s.width, "seconds": s.seconds, "warmup": s.warmup, "min_samples": 3,
                "steps": s.steps, "workdir": str(work), "e2e_loader": e2e_loader,
                "profile_questions": s.profile_questions, "main_threads": s.main_threads}
        cuda = s.device.startswith("cuda")
        fmt = {"workers": s.workers, "device": s.device, "steps": s.steps, "e2e_loader": e2e_loader,
               "gpus": visible_gpus() if cuda else 0, "dp_backend": "nccl" if cuda else "gloo"}
        todo = []
        for name, c in REGISTRY.items():
            entry = {"group": c.group, "title": c.title.format(**fmt)}
            if (c.group not in s.groups and name not in s.groups) or name in s.drop:
                continue  # not asked for
            why = applicability(name, s, codecs)
            if why:
                doc["components"][name] = {**entry, "status": "skipped", "reason": why}
                echo(f"  skip {name}: {why}")
            else:
                todo.append((name, entry))
        _write_json(json_path, doc)
        # The headline pair runs `repeats` times, alternating (pyav, baseline, pyav, ...), so
        # that both sides see the same background load on a shared machine; their block
        # samples are pooled, and the ratio of each pair is kept.
        pair = [t for t in todo if t[0] in PAIR]
        if s.repeats > 1 and len(pair) == 2:
            rest = [t for t in todo if t[0] not in PAIR]
            todo = pair * s.repeats + rest
        runs: dict[str, list] = {}
        for k, (name, entry) in enumerate(todo, 1):
            budget = left() - RESERVE_S
            if budget < MIN_START_S:
                doc["components"][name] = {**entry, "status": "skipped",
                                           "reason": f"time budget exhausted ({max(0.0, left()):.0f} s left)"}
                echo(f"[{k:2d}/{len(todo)}] {name}: skipped, time budget exhausted")
                continue
            cap = budget if entry["group"] in ("e2e", "dp") else min(budget, 10 * s.seconds + 90)
            echo(f"[{k:2d}/{len(todo)}] {name}: {entry['title']} ...")
            result = spawn(name, {**spec, "deadline_s": max(1.0, cap - 8.0)}, cap, logs)
            runs.setdefault(name, []).append(result)
            doc["components"][name] = {**entry, **(merge_repeats(runs[name]) if name in PAIR else result)}
            echo("        " + _one_line(doc["components"][name]))
            doc["ratios"], doc["ratio_details"] = compute_ratios(doc["components"])
            doc["total_seconds"] = round(time.perf_counter() - t_start, 1)
            _write_json(json_path, doc)
    finally:
        doc["ratios"], doc["ratio_details"] = compute_ratios(doc["components"])
        doc["total_seconds"] = round(time.perf_counter() - t_start, 1)
        doc["load_average_end"] = list(os.getloadavg())
        doc["components"] = {n: doc["components"][n] for n in display_order() if n in doc["components"]}
        if not s.keep:
            shutil.rmtree(work, ignore_errors=True)
            for c in doc["components"].values():
                c.pop("log", None)
        _write_json(json_path, doc)
    echo("")
    echo(format_report(doc))
    echo(f"JSON: {json_path}   ({doc['total_seconds']:.0f} s in all)")
    return doc


def short(text, limit: int = 200) -> str:
    """The first line of an error, cut to `limit` characters (the JSON keeps it whole)."""
    line = str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _one_line(c: dict) -> str:
    if c.get("status") != "ok":
        return f"{c.get('status')}: {short(c.get('reason') or c.get('error'))}"
    m = c.get("metric") or {}
    spread = f" (IQR {100 * m['spread']:.0f}% of median, n={m['n']})" if m.get("spread") is not None else ""
    med = m.get("median")
    return (f"{med:.4g} {m.get('unit')}{spread}; peak RSS {c.get('peak_rss_mb')} MB; "
            f"{c.get('wall_seconds', c.get('seconds'))} s") if med is not None else "no samples"
