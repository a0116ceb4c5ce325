"""`fastssl bench`: loader, model, end-to-end, baseline, host headroom, evaluation and the
clip-builder op, measured side by side in one run. Registered in fastssl/cli.py."""
from __future__ import annotations

import os
import sys
import time

import click

from fastssl.benchmarks.registry import DEFAULT_GROUPS, GROUPS, QUICK_SKIP, REGISTRY
from fastssl.config import DEVICES, PRECISIONS, PRESETS
from fastssl.data.encode import CODECS
from fastssl.pretext import MODES


def _groups(value, param_hint):
    """Comma-separated group names (loader, model, ...) or component names (loader.pyav, ...)."""
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in GROUPS and n not in REGISTRY]
    if unknown or not names:
        raise click.BadParameter(f"unknown group(s) {unknown or value!r}; choose groups from {', '.join(GROUPS)} "
                                 f"or components from {', '.join(REGISTRY)}", param_hint=param_hint)
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
              help="Short run (~2-3 minutes on a 2-core CPU): 3 s per component, 10 timed end-to-end steps, 6 host "
                   "steps, no pretext host runs, a smaller synthetic dataset, a 200 s budget. Flags given "
                   "explicitly still win.")
@click.option("--preset", type=click.Choice(list(PRESETS)), default=None,
              help="Sizes and model (as in pretrain). Default: paper on CUDA, tiny on the CPU. The host "
                   "headroom components always use paper's.")
@click.option("--device", type=click.Choice(DEVICES), default=None, help="Default: cuda when a GPU is visible.")
@click.option("--precision", type=click.Choice(PRECISIONS), default=None, help="Default: bf16 on CUDA, else fp32.")
@click.option("--mode", type=click.Choice(MODES), default="rp", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Questions per batch (pretext) and clips per batch (fine-tune); default from the preset.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="PyAV and baseline DataLoader workers, DALI threads (default: all usable cores); the baseline "
                   "always gets as many as fastssl's loader.")
@click.option("--decoders", type=click.IntRange(min=1), default=1, show_default=True,
              help="DALI loader: video pipelines per GPU.")
@click.option("--size", type=click.IntRange(min=64), default=None, help="Crop side in pixels (preset).")
@click.option("--resize", type=str, default=None, help="HxW frames are scaled to before cropping (preset).")
@click.option("--width", type=click.FloatRange(min=0, min_open=True), default=None,
              help="3D-AlexNet channel-width multiplier (preset).")
@click.option("--main-threads", type=click.IntRange(min=1), default=None,
              help="torch.set_num_threads in every component's main process (default: torch's own).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--seconds", type=click.FloatRange(min=0.1), default=None,
              help="Measured time per throughput component, after the warm-up (default 10; quick 3).")
@click.option("--warmup", type=click.IntRange(min=0), default=None,
              help="Warm-up blocks (loaders: one batch per worker) or steps, never timed (default 2; quick 1).")
@click.option("--steps", type=click.IntRange(min=2), default=None,
              help="Timed steps of each end-to-end run, after a warm-up as long as the loader's prefetch queue "
                   "(default 40; quick 10).")
@click.option("--host-steps", type=click.IntRange(min=2), default=None,
              help="Timed steps of each host-headroom run (default 20; quick 6).")
@click.option("--chunk-seconds", type=click.FloatRange(min=0), default=None,
              help="DALI loader: seconds it may run on past its measurement to cross a reader chunk boundary "
                   "(default 60; quick 10).")
@click.option("--time-budget", type=click.FloatRange(min=1), default=None,
              help="Seconds for the whole run, dataset included (default 1200; quick 200). Components that no "
                   "longer fit are skipped with a note; the ratios' inputs run first.")
@click.option("--only", type=str, default=None,
              help=f"Comma-separated groups ({', '.join(GROUPS)}) or components (loader.pyav, ...). "
                   "`compile` (torch.compile vs eager, ~a minute per model) runs only when asked for.")
@click.option("--skip", type=str, default=None, help="Comma-separated groups or components to leave out.")
@click.option("--data", type=click.Path(exists=True, file_okay=False), default=None,
              help="Use this dataset instead of generating a synthetic one in a temp folder.")
@click.option("--codec", type=click.Choice(("auto",) + tuple(CODECS)), default="auto", show_default=True,
              help="Codec of the generated dataset: auto = h264 on CUDA (NVDEC), vp9 on the CPU (what DALI decodes "
                   "there).")
@click.option("--classes", type=click.IntRange(min=2), default=None, help="Generated dataset: classes (10; quick 8).")
@click.option("--videos-per-class", type=click.IntRange(min=2), default=None,
              help="Generated dataset: videos per class (6; quick 5).")
@click.option("--frames", type=click.IntRange(min=1), default=None,
              help="Generated dataset: frames per video (48; quick 32); at least the window W.")
@click.option("--video-size", type=str, default="320x240", show_default=True,
              help="Generated dataset: WxH of the videos (UCF101's is 320x240).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Where to write the results (default runs/bench-<time>.json).")
@click.option("--keep", is_flag=True, help="Keep the temp folder (dataset, logs, run folders).")
def bench(quick, preset, device, precision, mode, batch_size, workers, decoders, size, resize, width, main_threads,
          seed, seconds, warmup, steps, host_steps, chunk_seconds, time_budget, only, skip, data, codec,
          classes, videos_per_class, frames, video_size, json_path, keep):
    """Throughput of every part of the data path, side by side, in one run.

    \b
    loader    questions/s of each loader (PyAV workers, DALI), clip builder included; DALI's
              step gap at a reader chunk boundary
    baseline  a plain DataLoader: PyAV + to_ndarray + CPU resize + float clips in the workers
    model     pretext and fine-tune steps on device tensors (the ceiling), TFLOP/s
    e2e       the real training run (run.run): clips/s and data-wait fraction
    host      the training thread's CPU ms per step at the paper batch (stand-in model) against
              the model's GPU ms per step (FLOPs at 40% of an H100's bf16 peak)
    eval      clips/s of evaluation (every clip of each test video, batched)
    dp        `fastssl pretrain` under torchrun, 1 and 2 processes, same global batch
    op        the clip builder (Triton, torch) against the copy bandwidth
    compile   torch.compile vs eager model steps (only with --only compile)

    Each component runs in its own process (peak memory is per component) after a warm-up;
    figures are medians with quartiles. Prints a table and the ratios, writes all to --json.
    """
    from fastssl.benchmarks.machine import usable_cores
    from fastssl.benchmarks.runner import run_bench
    from fastssl.config import default_preset
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
    frame_hw = resize_hw or p["resize"]
    if (size or p["size"]) > min(frame_hw):
        raise click.BadParameter(f"crop {size or p['size']} is larger than the frames it is cut from "
                                 f"({frame_hw[0]}x{frame_hw[1]}, h x w)", param_hint="--size")
    groups = _groups(only, "--only") or list(DEFAULT_GROUPS)
    dropped = _groups(skip, "--skip") or []
    groups = tuple(g for g in groups if g not in dropped)
    if not groups:
        raise click.BadParameter("nothing left to run", param_hint="--skip")
    frames = frames or (32 if quick else 48)
    if data is None and frames < p["W"]:
        raise click.BadParameter(f"{frames} frames per video, but a window needs W={p['W']}", param_hint="--frames")

    def pick(value, quick_value, default):
        return value if value is not None else quick_value if quick else default

    spec = {"preset": preset, "device": device, "precision": precision, "mode": mode, "batch_size": batch_size,
            "workers": usable_cores() if workers is None else workers, "decoders": decoders, "seed": seed,
            "size": size, "resize": list(resize_hw) if resize_hw else None, "width": width,
            "main_threads": main_threads, "seconds": pick(seconds, 3.0, 10.0), "warmup": pick(warmup, 1, 2),
            "steps": pick(steps, 10, 40), "host_steps": pick(host_steps, 6, 20),
            "chunk_seconds": pick(chunk_seconds, 10.0, 60.0)}
    drop = tuple(d for d in dropped if "." in d) + (QUICK_SKIP if quick and not only else ())
    run = {"groups": groups, "drop": drop, "time_budget": pick(time_budget, 200.0, 1200.0),
           "data": data, "codec": None if codec == "auto" else codec,
           "classes": pick(classes, 8, 10), "videos_per_class": pick(videos_per_class, 5, 6), "frames": frames,
           "video_size": wh, "keep": keep}
    json_path = json_path or os.path.join("runs", f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json")
    click.echo(f"fastssl bench: preset {preset} on {device} ({precision}), {spec['workers']} workers, "
               f"groups {','.join(groups)}, budget {run['time_budget']:.0f} s")
    run_bench(spec, run, json_path, echo=click.echo, argv=list(sys.argv))


if __name__ == "__main__":
    bench()
