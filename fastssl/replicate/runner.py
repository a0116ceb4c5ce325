"""Run a replicate plan in-process: datasets, pretext runs, fine-tunes, evaluations, the report.

    WORK/data/<set>/        the datasets (datasets.py)
    WORK/runs/<run>/        each run's folder (config, metrics.jsonl, TensorBoard, checkpoints,
                            result.json); fine-tunes hold train/, eval/, eval-shuffled/
    WORK/replicate-plan.json  the sizes this folder was run with

Frozen-feature scores (fastssl.train.frozen: retrieval and a linear probe on conv1..pool3, no
fine-tuning) are scored on the labelled set for each pretext checkpoint (in its result.json)
and for random weights seeded per Scratch seed (in that Scratch run's result.json).

A run is finished when its runs/<key>/result.json exists: a second `replicate` into the same
--out skips it. A run with a checkpoint but no result.json was interrupted: it is resumed from
its newest checkpoint (`setup_resume`). Anything else starts over in its folder.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from fastssl.files import atomic_write
from fastssl.replicate import datasets as data_mod
from fastssl.replicate.plan import Plan, Run, control_eval_questions
from fastssl.train.runlog import read_metrics

RESULT = "result.json"
PLAN_FILE = "replicate-plan.json"
CKPT_EVERY = 50        # resume granularity (steps); a checkpoint of the tiny model takes ~0.1 s
SHUFFLE_SEED = 0       # the frames-shuffled evaluation's seed (per video, see evaluate)
EVAL_EVERY = 100       # held-out pretext questions scored every this many steps: the learning curve
FROZEN_KEYS = ("retrieval_top1", "retrieval_top5", "retrieval_top10", "retrieval_top20",
               "retrieval_top50", "probe_clip_accuracy", "probe_video_accuracy", "train_clips",
               "test_clips", "chance")


class ReplicateError(ValueError):
    """A replicate folder that cannot be continued as asked (the CLI prints it as a usage error)."""


def _write_json(path: Path, obj) -> None:
    atomic_write(path, json.dumps(obj, indent=1) + "\n")


def _curve(run_dir: Path, key: str) -> list:
    """[[step, value], ...] of metrics.jsonl's `key`."""
    return [[row["step"], row[key]] for row in read_metrics(run_dir) if key in row]


def _has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / "config.json").is_file() and any(run_dir.glob("checkpoint*.pt"))


class Context:
    def __init__(self, work: Path, plan: Plan, folders: dict, *, device, workers, progress, report):
        self.out, self.plan, self.folders = work, plan, folders
        self.device, self.workers, self.progress, self.report = device, workers, progress, report
        self.quiet = (lambda *a, **k: None)

    def run_dir(self, key: str) -> Path:
        return self.out / "runs" / key


def _train(ctx: Context, command: str, run_dir: Path, steps: int, **options):
    """Start or resume one training run; returns the train function's result."""
    from fastssl.train import run_setup
    from fastssl.train.run import run
    from fastssl.train.tasks import TASKS

    if _has_checkpoint(run_dir):
        try:
            setup = run_setup.setup_resume(command, str(run_dir), workers=ctx.workers, device=ctx.device,
                                           report=ctx.quiet)
            ctx.report(f"  resuming from step {setup.resume.step}")
            return run(TASKS[command], setup, progress=ctx.progress, report=ctx.quiet)
        except run_setup.SetupError as e:
            ctx.report(f"  cannot resume ({e}); starting over")
    s = ctx.plan.sizes
    options.setdefault("eval_questions", s.eval_questions)
    setup = run_setup.setup_training(
        command, data=options.pop("data"), out=str(run_dir), preset=s.preset, device=ctx.device,
        workers=ctx.workers, steps=steps, batch_size=s.batch_size, ckpt_every=CKPT_EVERY, force=True,
        report=ctx.quiet, **options)
    return run(TASKS[command], setup, progress=ctx.progress, report=ctx.quiet)


def run_pretext(ctx: Context, run: Run) -> dict:
    run_dir = ctx.run_dir(run.key)
    t0 = time.time()
    control = run.dataset.startswith("static")
    extra = {"eval_questions": control_eval_questions(ctx.plan.sizes)} if control else {}
    r = _train(ctx, "pretrain", run_dir, ctx.plan.sizes.pretext_steps, data=ctx.folders[run.dataset],
               mode=run.mode, seed=run.seed, log_every=10, eval_every=EVAL_EVERY, **extra)
    # a static control has no features worth scoring: it must learn nothing
    frozen = None if control else _frozen(ctx, r["checkpoint"], run_dir / "frozen")
    return {"pretext_accuracy": r["pretext_accuracy"], "chance": r.get("chance"),
            "questions": r.get("questions"), "steps": r["steps"],
            "curve": _curve(run_dir, "pretext/accuracy"),
            "heldout_curve": _curve(run_dir, "heldout/question_accuracy"), "frozen": frozen,
            "checkpoint": r["checkpoint"], "seconds": round(time.time() - t0, 1)}


def _frozen(ctx: Context, checkpoint: str, out: Path, random_seed: int | None = None) -> dict:
    """Frozen-feature scores on the labelled set: of the checkpoint's conv1..pool3, or, with
    `random_seed`, of fresh random ones (built with the checkpoint's config: same geometry)."""
    from fastssl.train import frozen, run_setup

    ckpt, cfg, dataset = run_setup.setup_evaluation(checkpoint, data=ctx.folders["labelled"], out=str(out),
                                                    device=ctx.device, workers=ctx.workers, force=True,
                                                    frozen=True, report=ctx.quiet)
    cfg = ckpt.runtime_config(cfg)
    features = (frozen.random_features(cfg, random_seed) if random_seed is not None
                else frozen.checkpoint_features(ckpt, cfg))
    scores = frozen.frozen_scores(features, cfg, dataset, progress=ctx.progress)
    return {k: scores[k] for k in FROZEN_KEYS if k in scores}


def _evaluate(ctx: Context, checkpoint: str, out: Path, shuffle_seed=None) -> dict:
    from fastssl.train import run_setup
    from fastssl.train.evaluation import evaluate

    ckpt, cfg, dataset = run_setup.setup_evaluation(checkpoint, data=ctx.folders["labelled"], out=str(out),
                                                    device=ctx.device, workers=ctx.workers, force=True,
                                                    report=ctx.quiet)
    r = evaluate(ckpt, cfg, dataset, progress=ctx.progress, force=True, shuffle_seed=shuffle_seed)
    return {k: r[k] for k in ("clip_accuracy", "video_accuracy", "clips", "videos", "chance")}


def run_finetune(ctx: Context, run: Run) -> dict:
    run_dir = ctx.run_dir(run.key)
    t0 = time.time()
    init = None
    if run.init is not None:
        init = str(ctx.run_dir(run.init) / "checkpoint.pt")
    train_dir = run_dir / "train"
    r = _train(ctx, "finetune", train_dir, ctx.plan.sizes.finetune_steps, data=ctx.folders["labelled"],
               init=init, seed=run.seed, log_every=10, eval_every=0)
    plain = _evaluate(ctx, r["checkpoint"], run_dir / "eval")
    shuffled = _evaluate(ctx, r["checkpoint"], run_dir / "eval-shuffled", shuffle_seed=SHUFFLE_SEED)
    # Scratch's frozen columns: the random weights it starts from (seeded per Scratch seed)
    frozen = (_frozen(ctx, r["checkpoint"], run_dir / "frozen", random_seed=run.seed)
              if run.init is None else None)
    return {"clip_accuracy": plain["clip_accuracy"], "video_accuracy": plain["video_accuracy"], "frozen": frozen,
            "shuffled_clip_accuracy": shuffled["clip_accuracy"],
            "shuffled_video_accuracy": shuffled["video_accuracy"], "chance": plain["chance"],
            "clips": plain["clips"], "videos": plain["videos"], "init": init,
            "train_accuracy": (_curve(train_dir, "finetune/accuracy") or [[None, None]])[-1][1],
            "steps": r["steps"], "seconds": round(time.time() - t0, 1)}


def _check_folder(work: Path, plan: Plan, force: bool, crf_control: bool) -> None:
    """Refuse to mix sizes in one work folder (P and K may change: finished seeds are reused)."""
    path = work / PLAN_FILE
    sizes = plan.sizes.to_dict()
    if path.is_file() and not force:
        try:
            old = json.loads(path.read_text()).get("sizes")
        except ValueError:
            old = None
        if old is not None and json.loads(json.dumps(sizes)) != old:
            changed = sorted(k for k in sizes if json.loads(json.dumps(sizes[k])) != old.get(k))
            raise ReplicateError(f"{work} holds a replicate run with other sizes ({', '.join(changed)} "
                                 "differ): continue it with the same options, choose another --work "
                                 "(or --out), or pass --force to start over")
    if force:
        for sub in ("runs", "data"):
            if (work / sub).is_dir():
                shutil.rmtree(work / sub)
    work.mkdir(parents=True, exist_ok=True)
    _write_json(path, {"sizes": sizes, "pretext_seeds": plan.pretext_seeds, "seeds": plan.seeds,
                       "pb_pretext_seeds": plan.pb_pretext_seeds, "crf_control": crf_control})


def replicate(out: str | os.PathLike, plan: Plan, *, work: str | os.PathLike | None = None,
              device: str | None = None, workers: int | None = None, force: bool = False,
              progress: bool = False, crf_control: bool = False, command_line: str = "",
              report=print, write_report: bool = True, report_only: bool = False) -> dict:
    """Run every run of `plan` under `work` (default out/work: data/ and runs/), skipping finished
    ones, then write the report (table.md, results.json, PNGs) into `out`. Returns the summary
    that results.json holds. `report_only`: run nothing, report the runs that finished (a
    stopped replicate's partial table; rows then average fewer runs, n says how many)."""
    from fastssl.replicate import report as report_mod

    out = Path(out)
    work = Path(work) if work is not None else out / "work"
    if report_only:
        if force:
            raise ReplicateError("--report-only reports finished runs; it cannot be combined with --force")
        return _report_finished(out, work, plan, crf_control, command_line, report, write_report)
    _check_folder(work, plan, force, crf_control)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    runs = list(plan.runs)
    if crf_control:
        runs = _with_crf_control(runs)
    needed = {"labelled"} | {r.dataset for r in runs}   # only the sets these runs train on
    folders = data_mod.build(work / "data", plan.sizes, needed, report=report, crf_control=crf_control)
    report(f"data: ready in {time.time() - started:.0f} s ({', '.join(folders)})")
    ctx = Context(work, plan, folders, device=device, workers=workers, progress=progress, report=report)
    results = {}
    for i, run in enumerate(runs, 1):
        path = ctx.run_dir(run.key) / RESULT
        if path.is_file():
            results[run.key] = json.loads(path.read_text())
            continue
        what = (f"{run.mode.upper()} pretext on {run.dataset}" if run.kind == "pretext" else
                f"fine-tune from {run.init}" if run.init else "fine-tune from scratch")
        report(f"[{i}/{len(runs)}] {run.key}: {what}, seed {run.seed}")
        res = run_pretext(ctx, run) if run.kind == "pretext" else run_finetune(ctx, run)
        res.update(key=run.key, setting=run.setting, kind=run.kind, seed=run.seed, mode=run.mode,
                   dataset=run.dataset, pretext_seed=run.pretext_seed)
        _write_json(path, res)
        results[run.key] = res
        if run.kind == "pretext":
            report(f"  pretext accuracy {100 * res['pretext_accuracy']:.1f}% on {res['questions']} held-out "
                   f"questions{_frozen_line(res)} ({res['seconds']:.0f} s)")
        else:
            report(f"  clip {100 * res['clip_accuracy']:.1f}%  video {100 * res['video_accuracy']:.1f}%  "
                   f"shuffled clip {100 * res['shuffled_clip_accuracy']:.1f}%{_frozen_line(res)} "
                   f"({res['seconds']:.0f} s)")
    wall = time.time() - started
    summary = report_mod.summarise(plan, [results[r.key] for r in runs], wall_seconds=wall,
                                   command_line=command_line, crf_control=crf_control,
                                   load_start=load_start)
    summary["static_frame_drift"] = _drift(folders)
    if write_report:
        table = report_mod.write(out, summary)
        report("")
        report(table)
        report(f"Report: {out}/table.md, results.json, *.png.  TensorBoard runs: "
               f"tensorboard --logdir {work / 'runs'}")
    return summary


def _frozen_line(res: dict) -> str:
    f = res.get("frozen")
    if not f:
        return ""
    what = "random weights" if res["kind"] == "finetune" else "frozen"
    return (f"; {what}: retrieval top-1 {100 * f['retrieval_top1']:.1f}%, probe clip "
            f"{100 * f['probe_clip_accuracy']:.1f}%")


def _with_crf_control(runs: list) -> list:
    """Add the crf control (RP on static scenes encoded with synth's default rate control) after
    the other controls."""
    extra = Run("control-crf-rp-p0", "control-crf-rp", "pretext", seed=0, mode="rp", dataset="static-crf")
    last = max((i for i, r in enumerate(runs) if r.setting.startswith("control-")), default=None)
    if last is None:
        return runs
    return runs[:last + 1] + [extra] + runs[last + 1:]


def _report_finished(out: Path, work: Path, plan: Plan, crf_control: bool, command_line: str, report,
                     write_report: bool) -> dict:
    from fastssl.replicate import report as report_mod

    runs = _with_crf_control(list(plan.runs)) if crf_control else list(plan.runs)
    results = []
    for run in runs:
        path = work / "runs" / run.key / RESULT
        if path.is_file():
            results.append(json.loads(path.read_text()))
    if not results:
        raise ReplicateError(f"{work / 'runs'}: no finished runs to report")
    report(f"report only: {len(results)} of {len(runs)} runs finished")
    wall = sum(r.get("seconds") or 0 for r in results)
    summary = report_mod.summarise(plan, results, wall_seconds=wall, command_line=command_line,
                                   crf_control=crf_control, load_start=None)
    summary["finished_runs"], summary["planned_runs"] = len(results), len(runs)
    summary["static_frame_drift"] = _drift({n: str(work / "data" / n) for n in ("static", "static-crf")
                                            if (work / "data" / n / "index.csv").is_file()})
    if write_report:
        out.mkdir(parents=True, exist_ok=True)
        report(report_mod.write(out, summary))
    return summary


def _drift(folders: dict) -> dict:
    """datasets.static_frame_drift of the static sets (the codec's order signal)."""
    return {name: data_mod.static_frame_drift(folders[name]) for name in ("static", "static-crf")
            if name in folders}
