"""fastssl command line: parse, validate, build one Config, call a loop. Nothing else.

Every bad value is refused here, with a usage error that says what is wrong, before any work.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import time

import click

from fastssl import __version__

DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


def _default_device() -> str:
    return "cuda" if _cuda_available() else "cpu"


def run_options(command):
    """Options shared by pretrain, finetune and evaluate, spelled the same everywhere."""
    @click.option("--data", "data", required=True, type=click.Path(file_okay=False),
                  help="Dataset folder made by `fastssl synth` or `fastssl prepare` "
                       "(holds index.csv, classInd.txt, trainlist01.txt, testlist01.txt).")
    @click.option("--out", "out", type=click.Path(file_okay=False), default=None,
                  help="Run folder for config.json, metrics.jsonl, TensorBoard logs (tb/) and "
                       "checkpoint.pt. Default: runs/<command>-<time>.")
    @click.option("--preset", type=click.Choice(["paper", "small", "tiny"]), default=None,
                  help="Sizes and learning rates: paper (224 px, full 3D-AlexNet, batch 64), "
                       "small (112 px), tiny (64 px, quarter width; for CPUs). "
                       "Default: paper on CUDA, tiny on the CPU.")
    @click.option("--steps", type=click.IntRange(min=1), default=None,
                  help="Optimizer steps (default from the preset).")
    @click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None,
                  help="Train for this many passes over the training videos instead of --steps.")
    @click.option("--batch-size", type=click.IntRange(min=1), default=None,
                  help="Questions per step in pretrain; clips per step in finetune/evaluate "
                       "(default from the preset).")
    @click.option("--seed", type=int, default=0, show_default=True,
                  help="Seeds weight init and every data choice (video, window, crop, flip, question).")
    @click.option("--device", type=click.Choice(DEVICES), default=None,
                  help="Default: cuda when a GPU is visible, else cpu.")
    @click.option("--precision", type=click.Choice(PRECISIONS), default=None,
                  help="Autocast dtype. Default: bf16 on CUDA, fp32 on the CPU "
                       "(bf16 is ~20x slower on CPUs without native bf16).")
    @click.option("--loader", type=click.Choice(["auto", "pyav", "dali"]), default="auto", show_default=True,
                  help="auto = DALI when installed and on CUDA, else PyAV.")
    @click.option("--workers", type=click.IntRange(min=0), default=None,
                  help="Decoding processes for the PyAV loader (default: min(4, CPU cores)).")
    @click.option("--decoders", type=click.IntRange(min=1), default=None,
                  help="DALI loader: video pipelines per GPU, one per NVDEC engine to keep busy "
                       "(default 1; an H100 has several engines).")
    @click.option("--size", type=click.IntRange(min=64), default=None,
                  help="Square crop fed to the model, in pixels (default from the preset).")
    @click.option("--width", type=click.FloatRange(min=0, min_open=True), default=None,
                  help="Channel-width multiplier of 3D-AlexNet (default from the preset).")
    @click.option("--clip-length", "D", type=int, default=None,
                  help="D: frames per clip (>= 8: 3D-AlexNet pools time three times). Default 8.")
    @click.option("--skip-bad", is_flag=True,
                  help="Report and skip missing or too-short videos instead of refusing to start.")
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        return command(*args, **kwargs)
    return wrapper


def _build_config(command: str, *, data, out, preset, device, precision, workers, loader,
                  skip_bad, windows_for_test=None, **overrides):
    """Validate everything, load the dataset, return (Config, VideoDataset). Usage errors only."""
    from fastssl.config import default_preset, resolve
    from fastssl.data.dataset import DatasetError, check_videos, load_dataset
    from fastssl.data.loaders import choose_loader, validate_files
    from fastssl.models.alexnet3d import MIN_FRAMES
    from fastssl.pretext import check_sizes

    device = device or _default_device()
    if device == "cuda" and not _cuda_available():
        raise click.BadParameter("CUDA was asked for but torch sees no GPU", param_hint="--device")
    if precision is None:
        precision = "bf16" if device == "cuda" else "fp32"
    if preset is None:
        preset = default_preset(device)
        click.echo(f"preset: {preset} (default on {device}; --preset to change)")
    try:
        loader = choose_loader(loader, device)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--loader") from None
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    out = out or os.path.join("runs", f"{command}-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg = resolve(preset, command, data=os.path.abspath(data), out=out, device=device,
                  precision=precision, workers=workers, loader=loader, **overrides)

    if command in ("pretrain", "finetune") and cfg.batch_size < 2:
        raise click.BadParameter(f"{cfg.batch_size}: training needs at least 2 per batch "
                                 "(BatchNorm statistics need more than one value)", param_hint="--batch-size")
    if overrides.get("steps") is not None and overrides.get("epochs") is not None:
        raise click.UsageError("give --steps or --epochs, not both")
    if cfg.D < MIN_FRAMES:
        raise click.BadParameter(f"D={cfg.D}: 3D-AlexNet pools time three times, so clips need "
                                 f"at least {MIN_FRAMES} frames", param_hint="--clip-length")
    if command != "finetune":
        try:
            check_sizes(cfg.W, cfg.D, cfg.N)
        except ValueError as e:
            raise click.UsageError(str(e)) from None
    if cfg.size > min(cfg.resize):
        raise click.BadParameter(f"crop {cfg.size} is larger than the frames it is cut from "
                                 f"({cfg.resize[0]}x{cfg.resize[1]}, h x w); use --resize", param_hint="--size")
    try:
        dataset = load_dataset(data)
        need = cfg.W if command == "pretrain" else cfg.D
        train = check_videos(dataset.train, need, skip=skip_bad, what=f"{command} (train split)", report=click.echo)
        # Pretext questions need W-frame windows; classification clips need D frames.
        if windows_for_test is None:
            windows_for_test = command == "pretrain"
        min_test = cfg.W if windows_for_test else cfg.D
        test = check_videos(dataset.test, min_test, skip=skip_bad, what=f"{command} (test split)", report=click.echo)
        train = validate_files(cfg.loader, train, device=cfg.device, min_frames=need, skip=skip_bad,
                               report=click.echo)
        test = validate_files(cfg.loader, test, device=cfg.device, min_frames=min_test, skip=skip_bad,
                              report=click.echo)
    except DatasetError as e:
        raise click.BadParameter(str(e), param_hint="--data") from None
    dataset = dataclasses.replace(dataset, train=train, test=test)
    click.echo(f"loader: {cfg.loader}  device: {cfg.device}  precision: {cfg.precision}  "
               f"dataset: {len(dataset.train)} train / {len(dataset.test)} test videos, "
               f"{dataset.num_classes} classes")
    return cfg, dataset


def _resize_option(f):
    return click.option("--resize", type=str, default=None,
                        help="HxW every frame is scaled to before cropping, e.g. 128x171 "
                             "(default from the preset).")(f)


def _parse_resize(value):
    if value is None:
        return None
    try:
        h, w = (int(x) for x in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not HxW, e.g. 128x171", param_hint="--resize") from None
    return (h, w)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="fastssl")
def main():
    """Video-order self-supervision for 3D CNNs (Suzuki et al.), with a GPU data path.

    \b
    Typical session:
      fastssl synth data/synth                      # or: fastssl prepare UCF101 data/ucf
      fastssl pretrain --data data/synth --mode rp --out runs/rp
      fastssl finetune --data data/synth --init runs/rp/checkpoint.pt --out runs/rp-ft
      fastssl evaluate --data data/synth --checkpoint runs/rp-ft/checkpoint.pt
    """


@main.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--classes", type=click.IntRange(min=2), default=10, show_default=True,
              help="Number of action classes (each a distinct motion pattern).")
@click.option("--motions", type=str, default=None,
              help="Comma-separated subset of motion names to use (default: all; see --list-motions).")
@click.option("--list-motions", is_flag=True, help="Print the motion names and exit.")
@click.option("--videos-per-class", type=click.IntRange(min=2), default=6, show_default=True,
              help="Videos per class; split into train/test by group, both non-empty.")
@click.option("--frames", type=click.IntRange(min=1), default=48, show_default=True,
              help="Exact number of frames per video.")
@click.option("--size", type=str, default="320x240", show_default=True,
              help="Frame size, WxH or S for SxS (UCF101 is 320x240). Even numbers.")
@click.option("--fps", type=click.IntRange(min=1), default=25, show_default=True)
@click.option("--codec", type=click.Choice(["h264", "vp9", "mjpeg"]), default="h264", show_default=True,
              help="h264 for GPU hosts (NVDEC); vp9 or mjpeg where DALI decodes on the CPU.")
@click.option("--gop", type=click.IntRange(min=1), default=8, show_default=True,
              help="A keyframe every GOP frames: short GOPs make random windows cheap to seek.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same frames.")
@click.option("--force", is_flag=True, help="Replace a dataset already in OUT.")
def synth(out, classes, motions, list_motions, videos_per_class, frames, size, fps, codec, gop, seed, force):
    """Generate a synthetic action dataset in UCF101's layout into OUT.

    Classes are motion patterns (constant velocity, bounces, friction, ...) with random colours,
    sizes and backgrounds, so one frame cannot tell the class: only motion can.
    """
    from fastssl.data import synth as synth_mod
    if list_motions:
        click.echo("\n".join(synth_mod.MOTIONS))
        return
    try:
        if "x" in size.lower():
            w, h = (int(x) for x in size.lower().split("x"))
        else:
            w = h = int(size)
    except ValueError:
        raise click.BadParameter(f"{size!r} is not WxH or S", param_hint="--size") from None
    motion_list = None
    if motions:
        motion_list = [m.strip() for m in motions.split(",") if m.strip()]
        unknown = [m for m in motion_list if m not in synth_mod.MOTIONS]
        if unknown:
            raise click.BadParameter(f"unknown motion(s) {unknown}; choose from {list(synth_mod.MOTIONS)}",
                                     param_hint="--motions")
    t0 = time.perf_counter()
    try:
        dataset = synth_mod.make_synthetic_dataset(
            out, classes=classes, motions=motion_list, videos_per_class=videos_per_class, frames=frames,
            size=(w, h), fps=fps, codec=codec, gop=gop, seed=seed, force=force)
    except FileExistsError as e:
        raise click.UsageError(f"{e} (pass --force to replace it)") from None
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    n = len(dataset.train) + len(dataset.test)
    seconds = time.perf_counter() - t0
    click.echo(f"wrote {n} videos ({len(dataset.train)} train, {len(dataset.test)} test, "
               f"{dataset.num_classes} classes) to {out} in {seconds:.1f} s "
               f"({n * frames / seconds:.0f} frames/s)")


@main.command()
@run_options
@_resize_option
@click.option("--mode", type=click.Choice(["rp", "ss", "pb"]), default="rp", show_default=True,
              help="How the wrong clip is made: rp = random permutation, ss = split and swap, "
                   "pb = played backward.")
@click.option("--window", "W", type=int, default=None,
              help="W: frames in the window the N clips are taken from (default 20).")
@click.option("--clips", "N", type=int, default=None,
              help="N: clips per question, i.e. SiameseNet branches (default 6; needs N <= W-D+1).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Peak learning rate (Adam; default from the preset, paper: 1e-4).")
def pretrain(resize, **kw):
    """Pretext training: find the one clip of N whose frames are out of order."""
    from fastssl.train.pretrain import pretrain as run
    cfg, dataset = _build_config("pretrain", resize=_parse_resize(resize), **kw)
    result = run(cfg, dataset)
    click.echo(f"held-out pretext accuracy: {result['pretext_accuracy']:.3f} "
               f"(chance {result['chance']:.3f}, {result['questions']} questions)")
    click.echo(f"checkpoint: {result['checkpoint']}")
    click.echo(f"TensorBoard: tensorboard --logdir {os.path.join(result['run_dir'], 'tb')}")


@main.command()
@run_options
@_resize_option
@click.option("--init", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Pretext checkpoint whose conv1..pool3 initialise the model. Without it: from scratch.")
@click.option("--lr-fc", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Learning rate of the new fc layers (paper: 1e-3).")
@click.option("--lr-conv", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Learning rate of the (pretrained) conv layers (paper: 1e-4).")
def finetune(resize, init, **kw):
    """Fine-tune 3D-AlexNet for action recognition (from a pretext checkpoint, or scratch)."""
    from fastssl.train.common import load_checkpoint
    from fastssl.train.finetune import finetune as run
    if init is not None:
        try:
            kind = load_checkpoint(init).get("kind")
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--init") from None
        if kind != "pretext":
            raise click.BadParameter(f"{init}: needs a pretext checkpoint (from `fastssl pretrain`), "
                                     f"this one is {kind!r}", param_hint="--init")
    cfg, dataset = _build_config("finetune", resize=_parse_resize(resize), init=init, **kw)
    if init is not None:
        from fastssl.config import Config
        saved = Config.load_json(load_checkpoint(init)["config"])
        mismatch = [f"{k}={getattr(saved, k)} (here {getattr(cfg, k)})" for k in ("width", "size", "D")
                    if getattr(saved, k) != getattr(cfg, k)]
        if mismatch:
            raise click.BadParameter(f"{init} was trained with {', '.join(mismatch)}; pass "
                                     f"--preset {saved.preset} or the same sizes", param_hint="--init")
    if init is None:
        click.echo("no --init: training from scratch")
    result = run(cfg, dataset)
    click.echo(f"checkpoint: {result['checkpoint']}")
    click.echo(f"TensorBoard: tensorboard --logdir {os.path.join(result['run_dir'], 'tb')}")


@main.command()
@run_options
@click.option("--checkpoint", type=click.Path(dir_okay=False, exists=True), required=True,
              help="A classifier checkpoint (clip and video accuracy) or a pretext one "
                   "(accuracy on held-out questions).")
def evaluate(checkpoint, **kw):
    """Clip and video accuracy on the test split (or pretext accuracy for a pretext checkpoint).

    Model settings (sizes, width) come from the checkpoint; runtime ones from the options.
    """
    from fastssl.train.common import load_checkpoint
    from fastssl.train.evaluate import evaluate as run
    try:
        state = load_checkpoint(checkpoint)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--checkpoint") from None
    from fastssl.config import Config
    saved = Config.load_json(state["config"])
    # The model's geometry and training length are the checkpoint's: refuse to pretend otherwise.
    for key, flag in (("size", "--size"), ("width", "--width"), ("D", "--clip-length"),
                      ("steps", "--steps"), ("epochs", "--epochs")):
        if kw.get(key) is not None:
            raise click.BadParameter(f"evaluate takes this from the checkpoint "
                                     f"({key}={getattr(saved, key)}); leave it out", param_hint=flag)
    kw["preset"] = kw["preset"] or saved.preset
    kw["W"], kw["N"], kw["mode"] = saved.W, saved.N, saved.mode
    kw["windows_for_test"] = state.get("kind") == "pretext"
    kw["size"], kw["width"], kw["D"] = saved.size, saved.width, saved.D
    cfg, dataset = _build_config("evaluate", resize=tuple(saved.resize), **kw)
    result = run(checkpoint, cfg, dataset)
    if result["kind"] == "pretext":
        click.echo(f"pretext accuracy on held-out questions: {result['pretext_accuracy']:.3f} "
                   f"(chance {result['chance']:.3f}, {result['questions']} questions)")
    else:
        click.echo(f"clip accuracy: {result['clip_accuracy']:.3f}  video accuracy: "
                   f"{result['video_accuracy']:.3f}  ({result['clips']} clips, {result['videos']} videos, "
                   f"chance {result['chance']:.3f})")
    click.echo(f"results: {os.path.join(cfg.out, 'eval.json')}")


from fastssl.cli_bench import bench  # noqa: E402  (its own module: the bench has many options)

main.add_command(bench)

if __name__ == "__main__":
    main()
