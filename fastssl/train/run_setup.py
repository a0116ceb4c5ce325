"""One run setup: command-line values -> what a run needs, loaded and checked once.

Every command (and the bench) goes through here, so a value is validated once and the same way
everywhere: the Config, the dataset (videos the loader can use), the checkpoint to resume, the
initial conv weights (--init read, --inflate inflated, here and only here). Problems raise
`SetupError` naming the option to blame; the CLI turns them into usage errors before any work is
done. Nothing here joins a process group: the entry point does (`distributed.init`).
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass

import torch

from fastssl.config import DEVICES, PRECISIONS, PRESETS, Config, default_preset, resolve
from fastssl.data import loaders
from fastssl.files import describe_file
from fastssl.data.dataset import DatasetError, VideoDataset, check_videos, load_dataset, read_stamp
from fastssl.models import ARCHS
from fastssl.models.alexnet3d import MIN_FRAMES
from fastssl.pretext import MODES, check_sizes
from fastssl.train import distributed
from fastssl.train.checkpoints import (Checkpoint, CheckpointError, checkpoint_for_init, features_of,
                                      newest_readable, read_checkpoint)
from fastssl.train.rundir import RunDirError, check_run_dir
from fastssl.train.schedule import lr_factor


@dataclass
class InitialWeights:
    """conv1..pool3 weights a new run starts from: a pretext checkpoint's (--init) or 2D AlexNet
    weights inflated to 3D (--inflate)."""
    source: str
    features: dict


@dataclass
class RunSetup:
    """Everything a training run was given, loaded and checked."""
    cfg: Config
    dataset: VideoDataset
    resume: Checkpoint | None = None      # continue from this checkpoint
    init: InitialWeights | None = None    # a new run's starting conv weights
    force: bool = False                   # a new run may clear --out
    finished: bool = False                # resume: nothing left to train or score
    dist: distributed.Dist = distributed.Dist()


class SetupError(ValueError):
    """A value that cannot work; `option` is the command-line flag to blame (None: several)."""

    def __init__(self, message: str, option: str | None = None):
        super().__init__(message)
        self.option = option


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_precision(device: str) -> str:
    # bf16 is ~20x slower than fp32 on CPUs without native bf16.
    return "bf16" if device.startswith("cuda") else "fp32"


def default_workers(device: str) -> int:
    """PyAV decoding processes (DALI: CPU threads). On a GPU host decoding is the CPU's whole
    job: every core but one for the training process (split among the local ranks under
    torchrun). On a CPU the model needs the cores too."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.startswith("cuda"):
        ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        return max(1, cores // max(1, ranks) - 1)
    return min(4, cores)


def runtime_values(*, device=None, precision=None, loader="auto", workers=None, report=print) -> dict:
    """Device, precision, loader and workers: defaults decided here, once."""
    device = device or default_device()
    if device not in DEVICES:
        raise SetupError(f"{device!r}: choose from {DEVICES}", "--device")
    if device == "cuda" and not torch.cuda.is_available():
        raise SetupError("CUDA was asked for but torch sees no GPU", "--device")
    precision = precision or default_precision(device)
    if precision not in PRECISIONS:
        raise SetupError(f"{precision!r}: choose from {PRECISIONS}", "--precision")
    try:
        loader = loaders.choose_loader(loader, device, report=report)
    except ValueError as e:
        raise SetupError(str(e), "--loader") from None
    return {"device": device, "precision": precision, "loader": loader,
            "workers": default_workers(device) if workers is None else workers}


def default_out(command: str) -> str:
    return os.path.join("runs", f"{command}-{time.strftime('%Y%m%d-%H%M%S')}")


def build_config(command: str, *, data: str, out: str | None = None, preset: str | None = None,
                 device: str | None = None, precision: str | None = None, loader: str = "auto",
                 workers: int | None = None, report=print, **overrides) -> Config:
    """A training run's Config from a preset and the given overrides (None = the preset's)."""
    runtime = runtime_values(device=device, precision=precision, loader=loader, workers=workers,
                             report=report)
    if preset is None:
        preset = default_preset(runtime["device"])
        report(f"preset: {preset} (default on {runtime['device']}; --preset to change)")
    if preset not in PRESETS:
        raise SetupError(f"{preset!r}: choose from {sorted(PRESETS)}", "--preset")
    if overrides.get("steps") is not None and overrides.get("epochs") is not None:
        raise SetupError("give --steps or --epochs, not both")
    if overrides.get("mode") is not None and overrides["mode"] not in MODES:
        raise SetupError(f"{overrides['mode']!r}: choose from {MODES}", "--mode")
    if overrides.get("arch") is not None and overrides["arch"] not in ARCHS:
        raise SetupError(f"{overrides['arch']!r}: choose from {ARCHS}", "--arch")
    runtime["device"] = distributed.rank_device(runtime["device"], distributed.from_env())
    cfg = resolve(preset, command, data=os.path.abspath(data), out=out or default_out(command),
                  **runtime, **overrides)
    check_config(cfg)
    return cfg


def check_config(cfg: Config) -> None:
    """Sizes that cannot work together, each blamed on its option."""
    ranks = distributed.from_env().world_size
    if cfg.command in ("pretrain", "finetune"):
        parts = ranks * cfg.accumulate
        if cfg.batch_size % parts:
            raise SetupError(f"{cfg.batch_size}: the (global) batch must divide by ranks x --accumulate "
                             f"= {ranks} x {cfg.accumulate}", "--batch-size")
        if cfg.batch_size // parts < 2:
            where = "per rank and micro-batch" if parts > 1 else "per batch"
            raise SetupError(f"{cfg.batch_size}: training needs at least 2 {where} (BatchNorm "
                             f"statistics need more than one value; here {cfg.batch_size // parts})",
                             "--batch-size")
    if cfg.sync_bn and not cfg.device.startswith("cuda"):
        raise SetupError("SyncBatchNorm runs on CUDA only; on the CPU each rank keeps its own "
                         "BatchNorm statistics", "--sync-bn")
    if cfg.D < MIN_FRAMES:
        raise SetupError(f"D={cfg.D}: every backbone halves time three times (3D-AlexNet's pools, the "
                         f"ResNets' strided layers), so clips need at least {MIN_FRAMES} frames",
                         "--clip-length")
    if cfg.command == "pretrain":
        try:
            check_sizes(cfg.W, cfg.D, cfg.N)
        except ValueError as e:
            raise SetupError(str(e)) from None
    if cfg.size > min(cfg.resize):
        raise SetupError(f"crop {cfg.size} is larger than the frames it is cut from "
                         f"({cfg.resize[0]}x{cfg.resize[1]}, h x w); use --resize", "--size")


def usable_dataset(cfg: Config, *, skip_bad: bool = False, windows_for_test: bool | None = None,
                   check_train: bool | None = None, report=print) -> VideoDataset:
    """Load cfg.data and keep the videos this run can use; refuse (or, with skip_bad, report
    and skip) missing or too-short ones, then run the loader's own up-front checks. The training
    split is checked unless `check_train` is False (default: not for `evaluate`, which reads the
    test split only, unless it scores frozen features)."""
    if check_train is None:
        check_train = cfg.command != "evaluate"
    if windows_for_test is None:  # pretext questions need W-frame windows, classifier clips D
        windows_for_test = cfg.command == "pretrain"
    need_train = cfg.W if cfg.command == "pretrain" else cfg.D
    need_test = cfg.W if windows_for_test else cfg.D
    loader = loaders.get(cfg.loader)
    try:
        dataset = _load(cfg.data, cfg.split)
        if cfg.command in ("finetune", "evaluate") and dataset.unlabelled and not windows_for_test:
            raise SetupError(f"{cfg.data} is an unlabelled set (prepared with --unlabelled): it has "
                             "no classes to fine-tune or evaluate on; use it for `fastssl pretrain`",
                             "--data")
        videos = {}
        for name, need in (("train", need_train), ("test", need_test)):
            if name == "train" and not check_train:
                videos[name] = dataset.train  # not read by this command
                continue
            kept = check_videos(getattr(dataset, name), need, skip=skip_bad,
                                what=f"{cfg.command} ({name} split)", report=report)
            videos[name] = loader.validate_files(kept, device=cfg.device, min_frames=need,
                                                 skip=skip_bad, report=report)
    except DatasetError as e:
        raise SetupError(str(e), "--data") from None
    return dataclasses.replace(dataset, **videos)


def _load(root: str, split: int) -> VideoDataset:
    try:
        return load_dataset(root, split=split)
    except DatasetError as e:
        if f"not {split}" in str(e):  # the folder lacks this split's lists
            raise SetupError(str(e), "--split") from None
        raise


def check_out(out: str, *, force: bool) -> None:
    try:
        check_run_dir(out, force=force)
    except RunDirError as e:
        raise SetupError(str(e), "--out") from None


def describe(cfg: Config, dataset: VideoDataset) -> str:
    return (f"loader: {cfg.loader}  device: {cfg.device}  precision: {cfg.precision}  dataset: "
            f"{len(dataset.train)} train / {len(dataset.test)} test videos, {dataset.num_classes} "
            f"classes (split {cfg.split})")


def setup_training(command: str, *, skip_bad: bool = False, force: bool = False, report=print,
                   **options) -> RunSetup:
    """pretrain / finetune: options -> a RunSetup, every check done before any work."""
    cfg = build_config(command, report=report, skip_bad=skip_bad, **options)
    check_out(cfg.out, force=force)
    init = None
    if cfg.inflate is not None:
        cfg, init = inflated(cfg, mean_given=options.get("mean") is not None,
                             std_given=options.get("std") is not None, report=report)
    read = _read_if_checkpoint(cfg.init) if cfg.init is not None else None
    if cfg.init is not None and read is None:
        init = _plain_init(cfg)
    elif cfg.init is not None:
        try:
            ckpt = checkpoint_for_init(read, cfg)
        except CheckpointError as e:
            raise SetupError(str(e), "--init") from None
        if ckpt.config.split != cfg.split:
            report(f"warning: {cfg.init} was pretrained on split {ckpt.config.split}, and this is "
                   f"split {cfg.split}: its pretext set may include this split's test videos")
        init = InitialWeights(f"{cfg.init} (pretext checkpoint)", features_of(ckpt))
    dataset = usable_dataset(cfg, skip_bad=skip_bad, report=report)
    report(describe(cfg, dataset))
    return RunSetup(cfg, dataset, init=init, force=force, dist=distributed.from_env())


def _read_if_checkpoint(path: str) -> Checkpoint | None:
    """The fastssl checkpoint at `path`, read once; None when the file is something else (a plain
    state dict, or junk that `_plain_init` then names)."""
    try:
        return read_checkpoint(path)
    except CheckpointError:
        return None


def _plain_init(cfg: Config) -> InitialWeights:
    """--init FILE that is not a fastssl checkpoint: a plain state dict of the backbone, as
    `fastssl export` writes it - for the ResNets torchvision's layout (fc.* is dropped, so
    weights saved from torchvision.models.video work too), for 3D-AlexNet its conv1..pool3."""
    from fastssl.models import build_features
    try:
        state = torch.load(cfg.init, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable file: say what it is
        what = describe_file(cfg.init, "a fastssl checkpoint or a state dict") if os.path.isfile(cfg.init) else "not found"
        raise SetupError(f"{cfg.init}: {'is ' + what if what != 'not found' else what}", "--init") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise SetupError(f"{cfg.init}: not a state dict (a {type(state).__name__})", "--init")
    backbone = {k: v for k, v in state.items() if not str(k).startswith("fc.")}
    try:
        build_features(cfg).load_state_dict(backbone)
    except RuntimeError as e:
        layout = "torchvision's layout" if cfg.arch != "alexnet3d" else "fastssl's conv1..pool3 layout"
        raise SetupError(f"{cfg.init}: does not fit --arch {cfg.arch} in {layout}: "
                         f"{str(e).splitlines()[0]}", "--init") from None
    layout = "torchvision layout" if cfg.arch != "alexnet3d" else "state dict"
    return InitialWeights(f"{cfg.init} ({cfg.arch}, {layout})", backbone)


def inflated(cfg: Config, *, mean_given: bool, std_given: bool,
             report=print) -> tuple[Config, InitialWeights]:
    """--inflate: the file must hold 2D AlexNet weights that fit this model; inputs are then
    normalised as the 2D weights were trained (ImageNet's statistics) unless --mean/--std say."""
    from fastssl.models.alexnet3d import conv_features
    from fastssl.models.inflate import IMAGENET_MEAN, IMAGENET_STD, InflateError, inflate_from_file
    if cfg.init is not None:
        raise SetupError("--inflate and --init both initialise the conv layers: give one", "--inflate")
    if cfg.arch != "alexnet3d":
        raise SetupError(f"--inflate builds 3D-AlexNet from 2D AlexNet weights; for --arch {cfg.arch} "
                         "give --init a state dict in torchvision's layout", "--inflate")
    features = conv_features(cfg.width)
    try:
        inflate_from_file(features, cfg.inflate)
    except InflateError as e:
        raise SetupError(str(e), "--inflate") from None
    init = InitialWeights(f"{cfg.inflate} (2D AlexNet, inflated)", features.state_dict())
    changes = {}
    if not mean_given:
        changes["mean"] = IMAGENET_MEAN
    if not std_given:
        changes["std"] = IMAGENET_STD
    if changes:
        report("--inflate: inputs normalised with ImageNet's mean and std (the 2D weights' own); "
               "--mean/--std override")
    return dataclasses.replace(cfg, **changes), init


# What `--resume` may change: everything else is the run's saved config.
RESUME_OPTIONS = ("steps", "workers", "decoders", "device", "accumulate")


def setup_resume(command: str, run_dir: str, *, steps: int | None = None, workers: int | None = None,
                 decoders: int | None = None, device: str | None = None, accumulate: int | None = None,
                 report=print) -> RunSetup:
    """Continue RUN_DIR from its newest complete checkpoint with its saved config. `finished`:
    the checkpoint is at the last step and the run's scores.json scored it. A raised --steps
    re-plans the cosine schedule from the checkpoint's step."""
    from fastssl.train.run import finished as scored
    config_path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(config_path):
        raise SetupError(f"{run_dir}: no config.json, so not a fastssl run folder", "--resume")
    try:
        cfg = Config.load(config_path)
    except (ValueError, TypeError) as e:
        raise SetupError(f"{config_path}: unreadable ({e})", "--resume") from None
    if cfg.command != command:
        raise SetupError(f"{run_dir} is a `fastssl {cfg.command}` run; resume it with that command",
                         "--resume")
    ckpt = newest_readable(run_dir, report=report)
    if ckpt is None:
        raise SetupError(f"{run_dir} has no checkpoint yet, so there is nothing to resume; start it "
                         "again (with --force to reuse the folder)", "--resume")
    changes = {}
    if device is not None and device != cfg.device.split(":")[0]:
        runtime = runtime_values(device=device, loader=cfg.loader, report=report)
        changes.update(device=runtime["device"], precision=default_precision(runtime["device"]))
        report(f"resuming on {device} (was {cfg.device}): the run continues, but not bit for bit")
    if workers is not None:
        changes["workers"] = workers
    if decoders is not None:
        changes["decoders"] = decoders
    if accumulate is not None and accumulate != cfg.accumulate:
        changes["accumulate"] = accumulate
        report(f"--accumulate {accumulate}: each step in {accumulate} micro-batches (was {cfg.accumulate}); the "
               "same steps, but BatchNorm sees smaller batches, so not bit for bit")
    changes["device"] = distributed.rank_device(changes.get("device", cfg.device), distributed.from_env())
    cfg = dataclasses.replace(cfg, out=run_dir, **changes)
    check_config(cfg)
    dataset = usable_dataset(cfg, skip_bad=cfg.skip_bad, report=report)
    epoch_size = len(dataset.train)
    if steps is not None:
        old_total = cfg.total_steps(epoch_size)
        if steps < ckpt.step:
            raise SetupError(f"the run is at step {ckpt.step} already; --steps must be at least that",
                             "--steps")
        if steps != old_total:
            before = lr_factor(ckpt.step, old_total, cfg.warmup)
            cfg = dataclasses.replace(cfg, steps=steps, epochs=None)
            report(f"--steps {steps}: from step {ckpt.step} on, the learning rate follows the cosine "
                   f"schedule of a {steps}-step run (factor {before:.3g} -> "
                   f"{lr_factor(ckpt.step, steps, cfg.warmup):.3g} of the peak)")
    total = cfg.total_steps(epoch_size)
    finished = ckpt.step >= total and scored(run_dir, total)
    report(f"resuming {run_dir} from {os.path.basename(ckpt.path)} (step {ckpt.step} of "
           f"{cfg.total_steps(epoch_size)})")
    report(describe(cfg, dataset))
    return RunSetup(cfg, dataset, resume=ckpt, finished=finished, dist=distributed.from_env())


def setup_evaluation(checkpoint: str, *, data: str, out: str | None = None, batch_size: int | None = None,
                     device=None, precision=None, loader="auto", workers=None, decoders=None,
                     compile: bool | None = None, skip_bad: bool = False, force: bool = False,
                     frozen: bool = False, report=print) -> tuple[Checkpoint, Config, VideoDataset]:
    """evaluate: the checkpoint fixes the model, its sizes and the split; the options fix where
    and how it runs. `frozen` (--frozen): the checkpoint's conv features are scored on D-frame
    clips of both splits, so both are checked and the set must be labelled."""
    try:
        ckpt = read_checkpoint(checkpoint)
    except CheckpointError as e:
        raise SetupError(str(e), "--checkpoint") from None
    runtime = runtime_values(device=device, precision=precision, loader=loader, workers=workers,
                             report=report)
    runtime["device"] = distributed.rank_device(runtime["device"], distributed.from_env())
    cfg = dataclasses.replace(ckpt.config, command="evaluate", data=os.path.abspath(data),
                              out=out or default_out("evaluate"), **runtime,
                              batch_size=batch_size or ckpt.config.batch_size,
                              decoders=decoders or ckpt.config.decoders, compile=bool(compile))
    check_out(cfg.out, force=force)
    if frozen:
        stamp, _ = read_stamp(cfg.data)  # what load_dataset calls unlabelled, read before any decoding
        if stamp and stamp.get("unlabelled"):
            raise SetupError(f"{cfg.data} is an unlabelled set (prepared with --unlabelled): frozen "
                             "features are scored by class (retrieval, linear probe), so they need a "
                             "labelled set", "--frozen")
        dataset = usable_dataset(cfg, skip_bad=skip_bad, windows_for_test=False, check_train=True,
                                 report=report)
    else:
        dataset = usable_dataset(cfg, skip_bad=skip_bad, windows_for_test=ckpt.kind == "pretext",
                                 report=report)
    # --frozen uses the conv layers only, so a classifier's classes need not match
    if ckpt.kind == "classifier" and not frozen and ckpt.classes != dataset.classes:
        raise SetupError(f"{ckpt.path} was trained on {len(ckpt.classes)} classes "
                         f"{_some(ckpt.classes)}, but {cfg.data} has {len(dataset.classes)}: "
                         f"{_some(dataset.classes)}; evaluate it on the dataset it was fine-tuned on",
                         "--data")
    report(describe(cfg, dataset))
    return ckpt, cfg, dataset


def _some(names: list[str], n: int = 6) -> str:
    return ", ".join(names[:n]) + (f", ... ({len(names) - n} more)" if len(names) > n else "")
