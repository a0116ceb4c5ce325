"""One training run, for every task: the wiring written once.

    fastssl pretrain --data DATA --out runs/rp --mode rp
    fastssl finetune --data DATA --init runs/rp/checkpoint.pt --out runs/rp-ft
    fastssl pretrain --resume runs/rp          # after Ctrl-C, a kill, a crash

run folder -> determinism and seed -> the task's model (+ initial weights) -> its plan -> Adam
over its param groups -> grad scaler -> restore (resume) -> log -> stream -> `train_steps` ->
final scores -> scores.json. A run is finished when its checkpoint is at the last step *and*
scores.json says so: a run killed between the two is scored on --resume.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from fastssl.files import atomic_write
from fastssl.train.distributed import data_parallel
from fastssl.train.determinism import seed_everything, set_deterministic
from fastssl.train.loop import Output, Training, train_steps
from fastssl.train.run_setup import RunSetup
from fastssl.train.rundir import prepare_run_dir
from fastssl.train.runlog import RunLog
from fastssl.train.schedule import make_optimizer
from fastssl.train.state import TrainState, restore
from fastssl.train.tasks import Task

SCORES = "scores.json"
# Final scores that also go to the run's log, under these names.
LOGGED = {"pretext_accuracy": "heldout/pretext_accuracy"}


def finished(run_dir: str, step: int) -> bool:
    """True when RUN_DIR's scores.json records a run scored at `step`."""
    path = Path(run_dir) / SCORES
    try:
        return json.loads(path.read_text())["steps"] == step
    except (OSError, ValueError, KeyError, TypeError):
        return False


def run(task: Task, setup: RunSetup, *, progress: bool = True, report=print) -> dict:
    """Train `task` as `setup` says (a new run, or a resumed one); return its result (also
    written to RUN_DIR/scores.json on rank 0)."""
    cfg, dataset, dist, resume = setup.cfg, setup.dataset, setup.dist, setup.resume
    run_dir = prepare_run_dir(cfg, resume=resume, force=setup.force, dist=dist)
    set_deterministic(cfg.deterministic)
    seed_everything(cfg.seed)
    model = task.build_model(cfg, dataset)
    if setup.init is not None and resume is None:
        model.features.load_state_dict(setup.init.features)
    plan = task.plan(cfg, dataset)
    total = cfg.total_steps(plan.epoch_size)
    optimizer = make_optimizer(cfg.optimizer, task.param_groups(model, cfg))
    scaler = torch.amp.GradScaler(torch.device(cfg.device).type, enabled=cfg.precision == "fp16")
    start = restore(resume, model, optimizer, scaler, cfg.device, report) if resume else TrainState()
    monitor = task.monitor(cfg, dataset) if dist.is_main and start.step < total else None
    log = RunLog(run_dir, resume_step=start.step if resume else None) if dist.is_main else None
    last: dict = {}
    try:
        if start.step < total:
            driven = data_parallel(model, cfg, dist)
            if cfg.compile:  # compiled for the training steps; checkpoints and scoring use `model`
                driven = torch.compile(driven)
            training = Training(cfg, task, driven, model, optimizer, scaler, task.checkpoint_extra(dataset))
            with task.stream(cfg, plan, start_step=start.step, dist=dist) as batches:
                last = train_steps(training, batches, total=total, videos=plan.videos, start=start,
                                   out=Output(run_dir, log, report, progress, dist), monitor=monitor)
        scores = task.final_scores(model, cfg, dataset, last=last, progress=progress, dist=dist)
        if log is not None:
            logged = {LOGGED[k]: v for k, v in scores.items() if k in LOGGED}
            if logged:
                log.log(total, **logged)
    finally:
        if log is not None:
            log.close()
    result = {**scores, "steps": total, "checkpoint": str(run_dir / "checkpoint.pt"), "run_dir": str(run_dir)}
    if dist.is_main:
        atomic_write(run_dir / SCORES, json.dumps(result, indent=2) + "\n")
    return result
