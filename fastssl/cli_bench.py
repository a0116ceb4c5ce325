"""`fastssl bench`: loader, model, end-to-end, baseline, peer decoders and the clip-builder op,
measured side by side in one run. Registered in fastssl/cli.py with `main.add_command(bench)`.

Also runnable alone: python -m fastssl.cli_bench --quick
"""
from __future__ import annotations

import os
import sys
import time

import click

from fastssl.benchmarks.components import DEFAULT_GROUPS, GROUPS, REGISTRY
from fastssl.config import PRESETS
from fastssl.data.encode import CODECS
from fastssl.pretext import MODES

DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")


def _groups(value, param_hint):
    """Comma-separated group names (loader, model, ...) or component names (loader.pyav, ...)."""
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in GROUPS and n not in REGISTRY]
    if unknown or not names:
        raise click.BadParameter(f"unknown group(s) {unknown or value!r}; choose groups from "
                                 f"{', '.join(GROUPS)} or components from {', '.join(REGISTRY)}",
                                 param_hint=param_hint)
    return names


def _pair(value, param_hint, example):
    if value is None:
        return None
    try:
        a, b = (int(x) for x in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not of the form {example}", param_hint=param_hint) from None
    if a <= 0 or b <= 0:
        raise click.BadParameter(f"{value!r}: both sides must be positive", param_hint=param_hint)
    return a, b


@click.command("bench", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--quick", is_flag=True,
              help="Short run (< 2 minutes on a 2-core CPU): 3 s per component, 10 timed end-to-end steps, a "
                   "smaller synthetic dataset, a 112 s budget. Any flag given explicitly still wins.")
@click.option("--preset", type=click.Choice(list(PRESETS)), default=None,
              help="Sizes and model (as in pretrain). Default: paper on CUDA, tiny on the CPU.")
@click.option("--device", type=click.Choice(DEVICES), default=None,
              help="Default: cuda when a GPU is visible, else cpu.")
@click.option("--precision", type=click.Choice(PRECISIONS), default=None,
              help="Default: bf16 on CUDA, fp32 on the CPU.")
@click.option("--mode", type=click.Choice(MODES), default="rp", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Questions per batch (pretext) and clips per batch (fine-tune); default from the preset.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="PyAV and baseline DataLoader workers, DALI threads (default: all usable cores). "
                   "The baseline always gets the same number as fastssl's loader.")
@click.option("--decoders", type=click.IntRange(min=1), default=1, show_default=True,
              help="DALI loader: video pipelines per GPU.")
@click.option("--size", type=click.IntRange(min=64), default=None, help="Crop side in pixels (preset).")
@click.option("--resize", type=str, default=None, help="HxW frames are scaled to before cropping (preset).")
@click.option("--width", type=click.FloatRange(min=0, min_open=True), default=None,
              help="3D-AlexNet channel-width multiplier (preset).")
@click.option("--main-threads", type=click.IntRange(min=1), default=None,
              help="torch.set_num_threads in every component's main process (default: torch's own, "
                   "i.e. all cores - what the real loops use).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--seconds", type=click.FloatRange(min=0.1), default=None,
              help="Measured time per throughput component, after the warm-up (default 10; quick 3).")
@click.option("--warmup", type=click.IntRange(min=0), default=None,
              help="Warm-up blocks (loaders: one batch per worker) or steps, never timed (default 2; "
                   "quick 1).")
@click.option("--steps", type=click.IntRange(min=2), default=None,
              help="Timed steps of each end-to-end run, after a warm-up as long as the loader's prefetch "
                   "queue (default 40; quick 10).")
@click.option("--repeats", type=click.IntRange(min=1), default=None,
              help="Run the PyAV loader and the baseline this many times each, alternating, and pool "
                   "the samples: both see the same background load (default 3; quick 2).")
@click.option("--time-budget", type=click.FloatRange(min=1), default=None,
              help="Seconds for the whole run, dataset included (default 1200; quick 112). Components "
                   "that no longer fit are skipped with a note; the ratios' inputs run first.")
@click.option("--only", type=str, default=None,
              help=f"Comma-separated groups to run ({', '.join(GROUPS)}) or single components (loader.pyav, "
                   "model.pretext, ...; see the table).")
@click.option("--skip", type=str, default=None, help="Comma-separated groups or components to leave out.")
@click.option("--peers", is_flag=True,
              help="Also time torchcodec and decord on the same windows (skipped with a note when absent).")
@click.option("--data", type=click.Path(exists=True, file_okay=False), default=None,
              help="Use this dataset instead of generating a synthetic one in a temp folder.")
@click.option("--codec", type=click.Choice(("auto",) + tuple(CODECS)), default="auto", show_default=True,
              help="Codec of the generated dataset: auto = h264 on CUDA (NVDEC), vp9 on the CPU (what DALI "
                   "decodes there).")
@click.option("--classes", type=click.IntRange(min=2), default=None, help="Generated dataset: classes (10; quick 8).")
@click.option("--videos-per-class", type=click.IntRange(min=2), default=None,
              help="Generated dataset: videos per class (6; quick 5).")
@click.option("--frames", type=click.IntRange(min=1), default=None,
              help="Generated dataset: frames per video (48; quick 32); at least the window W.")
@click.option("--video-size", type=str, default="320x240", show_default=True,
              help="Generated dataset: WxH of the videos (UCF101's is 320x240).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Where to write the results (default runs/bench-<time>.json).")
@click.option("--keep", is_flag=True, help="Keep the temp folder (dataset, logs, end-to-end runs).")
def bench(quick, preset, device, precision, mode, batch_size, workers, decoders, size, resize, width, main_threads, seed,
          seconds, warmup, steps, repeats, time_budget, only, skip, peers, data, codec, classes, videos_per_class,
          frames, video_size, json_path, keep):
    """Throughput of every part of the data path, side by side, in one run.

    \b
    loader-only   questions/s of each loader (PyAV workers, DALI), clip builder included
    baseline      a plain DataLoader: PyAV + to_ndarray + CPU resize + float clips in the workers
    model-only    pretext and fine-tune steps on device tensors (the ceiling), TFLOP/s
    end-to-end    the real pretrain/finetune loops: clips/s and data-wait fraction
    data-parallel `fastssl pretrain` under torchrun, 1 and 2 processes (CUDA: 2 GPUs; dp.gpus:
                  one per visible GPU when more than 2) on the same global batch, clips/s
    op            the clip builder (Triton, torch, DALI-only) against the copy bandwidth
    profile       where a question's CPU time goes, stage by stage, for both CPU paths
    peers         torchcodec / decord on the same windows (--peers; when installed)

    Each component runs in its own process (peak memory is per component) after a warm-up;
    figures are medians with quartiles. Prints a table and the ratios, writes all to --json.
    """
    from fastssl.benchmarks.machine import usable_cores
    from fastssl.benchmarks.runner import Settings, run_bench
    from fastssl.config import default_preset
    from fastssl.pretext import check_sizes
    from fastssl.train.run_setup import SetupError, runtime_values

    try:  # the defaults every command uses (run_setup decides them once)
        runtime = runtime_values(device=device, precision=precision, loader="pyav", report=click.echo)
    except SetupError as e:
        raise click.BadParameter(str(e), param_hint=e.option) from None
    device, precision = runtime["device"], runtime["precision"]
    preset = preset or default_preset(device)
    resize_hw = _pair(resize, "--resize", "HxW, e.g. 128x171")
    wh = _pair(video_size, "--video-size", "WxH, e.g. 320x240")
    if wh[0] % 2 or wh[1] % 2 or min(wh) < 16:
        raise click.BadParameter(f"{video_size}: width and height must be even and >= 16", param_hint="--video-size")
    p = PRESETS[preset]
    crop = size or p["size"]
    frame_hw = resize_hw or p["resize"]
    if crop > min(frame_hw):
        raise click.BadParameter(f"crop {crop} is larger than the frames it is cut from "
                                 f"({frame_hw[0]}x{frame_hw[1]}, h x w)", param_hint="--size")
    try:
        check_sizes(p["W"], p["D"], p["N"])
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    groups = _groups(only, "--only") or list(DEFAULT_GROUPS)
    dropped = _groups(skip, "--skip") or []
    if peers and "peers" not in groups:
        groups.append("peers")
    groups = tuple(g for g in groups if g not in dropped)
    if not groups:
        raise click.BadParameter("nothing left to run", param_hint="--skip")
    drop = tuple(d for d in dropped if "." in d)  # single components; groups are gone already
    frames = frames or (32 if quick else 48)
    if data is None and frames < p["W"]:
        raise click.BadParameter(f"{frames} frames per video, but a window needs W={p['W']}", param_hint="--frames")

    settings = Settings(
        device=device, preset=preset, precision=precision, mode=mode, batch_size=batch_size,
        workers=usable_cores() if workers is None else workers, decoders=decoders, seed=seed, size=size,
        resize=resize_hw, width=width, seconds=seconds or (3.0 if quick else 10.0),
        warmup=(1 if quick else 2) if warmup is None else warmup,
        steps=steps or (10 if quick else 40), time_budget=time_budget or (112.0 if quick else 1200.0),
        groups=groups, data=data, codec=None if codec == "auto" else codec,
        classes=classes or (8 if quick else 10), videos_per_class=videos_per_class or (5 if quick else 6),
        frames=frames, video_size=wh, keep=keep, profile_questions=12 if quick else 48,
        repeats=repeats or (2 if quick else 3), main_threads=main_threads, drop=drop)
    json_path = json_path or os.path.join("runs", f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json")
    click.echo(f"fastssl bench: preset {preset} on {device} ({precision}), {settings.workers} workers, "
               f"groups {','.join(groups)}, budget {settings.time_budget:.0f} s")
    run_bench(settings, json_path, echo=click.echo, argv=list(sys.argv))


if __name__ == "__main__":
    bench()
