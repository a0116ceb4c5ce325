"""fastssl command line: parse options, hand them to the run setup, call a loop, print.

Validation lives in `fastssl.train.run_setup` (shared with the bench); its errors become usage
errors here, before any work.
"""
from __future__ import annotations

import os
import shutil
import sys
import time

import click

from fastssl import __version__
from fastssl.config import ARCHS, DEVICES, OPTIMIZERS, PRECISIONS, PRESETS
from fastssl.data.encode import CODECS
from fastssl.data.loaders import CHOICES as LOADER_CHOICES
from fastssl.pretext import MODES

def _options(*decorators):
    """Stack click options so a group of them can be applied as one decorator."""
    def apply(command):
        for decorator in reversed(decorators):
            command = decorator(command)
        return command
    return apply


def data_options(required: bool):
    return _options(
        click.option("--data", "data", required=required, type=click.Path(file_okay=False),
                     help="Dataset folder made by `fastssl synth` or `fastssl prepare` "
                          "(index.csv, classInd.txt, trainlistNN.txt, testlistNN.txt)."
                          + ("" if required else " Required unless --resume.")),
        skip_bad_option,
    )


skip_bad_option = click.option(
    "--skip-bad", is_flag=True,
    help="Report and skip missing, unreadable or too-short videos instead of refusing to start "
         "(each skipped file is named).")

split_option = click.option("--split", type=click.IntRange(1, 3), default=1, show_default=True,
                            help="Which train/test split lists to use (UCF101 and HMDB51 ship "
                                 "three; `synth` and plain folders have split 1).")


def out_options(what: str):
    return _options(
        click.option("--out", "out", type=click.Path(file_okay=False), default=None,
                     help=f"Folder for {what}. Default: runs/<command>-<time>. A folder that "
                          "already holds a run is refused (see --force)."),
        click.option("--force", is_flag=True,
                     help="Reuse an --out folder that holds a run: its run files are deleted first."),
    )


runtime_options = _options(
    click.option("--device", type=click.Choice(DEVICES), default=None,
                 help="Default: cuda when a GPU is visible, else cpu."),
    click.option("--precision", type=click.Choice(PRECISIONS), default=None,
                 help="Autocast dtype. Default: bf16 on CUDA, fp32 on the CPU "
                      "(bf16 is ~20x slower on CPUs without native bf16). fp16 needs loss scaling, "
                      "whose GradScaler reads a value back from the GPU every step (a host wait); "
                      "bf16 needs none."),
    click.option("--loader", type=click.Choice(LOADER_CHOICES), default="auto", show_default=True,
                 help="auto = DALI when installed and on CUDA, else PyAV."),
    click.option("--workers", type=click.IntRange(min=0), default=None,
                 help="PyAV loader: decoding processes (0 = in the main process); DALI: CPU "
                      "threads. Default: min(4, CPU cores)."),
    click.option("--decoders", type=click.IntRange(min=1), default=None,
                 help="DALI loader: video pipelines per GPU, one per NVDEC engine to keep busy "
                      "(default 1; an H100 has several engines)."),
    click.option("--compile", "compile", is_flag=True, default=None,
                 help="torch.compile the model (off by default): fewer, fused kernels on a GPU, "
                      "after a compile of a minute or so at the first step; little gain on a CPU."),
)

training_options = _options(
    click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
                 help="Sizes and learning rates: paper (224 px, full 3D-AlexNet, batch 64), "
                      "small (112 px), tiny (64 px, quarter width; for CPUs). "
                      "Default: paper on CUDA, tiny on the CPU."),
    click.option("--steps", type=click.IntRange(min=1), default=None,
                 help="Optimizer steps (default from the preset)."),
    click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="Train for this many passes over the training videos instead of --steps."),
    click.option("--batch-size", type=click.IntRange(min=1), default=None,
                 help="Questions per step in pretrain, clips per step in finetune (default from "
                      "the preset). The global batch: under torchrun each of R ranks takes 1/R of "
                      "it, so it must divide by R (x --accumulate) leaving at least 2 each, for "
                      "BatchNorm; learning rates stay as for one process."),
    click.option("--seed", type=int, default=0, show_default=True,
                 help="Seeds weight init and every data choice (video, window, crop, flip, question)."),
    click.option("--size", type=click.IntRange(min=64), default=None,
                 help="Square crop fed to the model, in pixels (default from the preset)."),
    click.option("--resize", type=str, default=None, callback=lambda ctx, p, v: _parse_resize(v),
                 help="HxW every frame is scaled to before cropping, e.g. 128x171 "
                      "(default from the preset)."),
    click.option("--width", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="Channel-width multiplier of 3D-AlexNet (default from the preset)."),
    click.option("--arch", type=click.Choice(ARCHS), default=None,
                 help="Backbone: alexnet3d (the paper's; default), or a video ResNet of later work "
                      "(r3d_18, mc3_18, r2plus1d_18: torchvision's layers and parameter names, "
                      "16-frame clips of 112 px unless --clip-length/--size say otherwise). For the "
                      "ResNets --init also takes a state dict in torchvision's layout."),
    click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None,
                 help="adam (default; the paper's rates are Adam-sized) or sgd (momentum 0.9; "
                      "needs larger rates, e.g. --lr 0.01)."),
    click.option("--warmup", type=click.FloatRange(0, 1), default=None,
                 help="Fraction of the steps spent warming the learning rate up linearly "
                      "(default 0.02), before the cosine decay."),
    click.option("--clip-length", "D", type=int, default=None,
                 help="D: frames per clip (>= 8: 3D-AlexNet pools time three times). Default 8."),
)


long_run_options = _options(
    click.option("--resume", type=click.Path(file_okay=False), default=None,
                 help="Continue the run in this folder from its newest complete checkpoint, with "
                      "its saved config. Only --steps (a new total re-plans the cosine schedule: "
                      "from the current step on it is that of a run of the new length), --workers, --decoders, "
                      "--device (bit-exact only on the same device) and --accumulate (after running "
                      "out of memory; not bit-exact: BatchNorm sees smaller batches) may be given with it."),
    click.option("--ckpt-every", type=click.IntRange(min=1), default=None,
                 help="Write a checkpoint every this many steps (default 500); one is also written "
                      "at least every 10 minutes of training, and at the end."),
    click.option("--keep-checkpoints", type=click.IntRange(min=1), default=None,
                 help="checkpoint-STEP.pt files to keep (default 2); checkpoint.pt is always the "
                      "newest complete one."),
    click.option("--log-every", type=click.IntRange(min=1), default=None,
                 help="Log loss, accuracy, clips/s and data wait every this many steps (default 10)."),
    click.option("--max-bad-fraction", type=click.FloatRange(0, 1), default=None,
                 help="Videos that fail to decode mid-run are named, redrawn and counted; stop when "
                      "more than this fraction of the training videos has failed (default 0.05)."),
    click.option("--skip-nonfinite", is_flag=True, default=None,
                 help="Skip batches whose loss is NaN/Inf (counted) instead of stopping the run at "
                      "the first one. Costs a CPU-GPU sync per step."),
    click.option("--accumulate", type=click.IntRange(min=1), default=None,
                 help="Micro-batches per optimizer step (default 1): the same step as one big "
                      "batch, in less memory. --batch-size stays the whole step's batch."),
    click.option("--sync-bn", is_flag=True, default=None,
                 help="Data parallel on CUDA: BatchNorm statistics over all ranks (SyncBatchNorm) "
                      "instead of each rank's own (the default)."),
    click.option("--deterministic", is_flag=True, default=None,
                 help="CUDA: deterministic cuDNN and cuBLAS choices (slower; see the README for "
                      "what stays non-deterministic). CPU runs are deterministic already."),
)


def _parse_triple(value, flag):
    if value is None:
        return None
    try:
        parts = tuple(float(x) for x in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise click.BadParameter(f"{value!r} is not three comma-separated numbers (R,G,B in 0-255 "
                                 "units)", param_hint=flag)
    return parts


init_options = _options(
    click.option("--inflate", type=click.Path(dir_okay=False), default=None,
                 help="A 2D AlexNet state dict (torchvision's key layout, e.g. ImageNet weights "
                      "you downloaded) whose conv1-conv5 are inflated to 3D as the starting "
                      "point (needs --width 1.0). Inputs are then normalised with ImageNet's "
                      "mean/std unless --mean/--std are given. Not with --init."),
    click.option("--mean", type=str, default=None, callback=lambda c, p, v: _parse_triple(v, "--mean"),
                 help="Input normalisation mean, R,G,B in 0-255 units (default: the Kinetics/UCF "
                      "statistics; ImageNet's with --inflate)."),
    click.option("--std", type=str, default=None, callback=lambda c, p, v: _parse_triple(v, "--std"),
                 help="Input normalisation std, R,G,B in 0-255 units."),
)


def _parse_resize(value):
    if value is None:
        return None
    try:
        h, w = (int(x) for x in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not HxW, e.g. 128x171", param_hint="--resize") from None
    return (h, w)


def _usage_errors(call):
    """Run a setup call; its SetupError becomes a usage error naming the option."""
    from fastssl.train.run_setup import SetupError
    try:
        return call()
    except SetupError as e:
        if e.option:
            raise click.BadParameter(str(e), param_hint=e.option) from None
        raise click.UsageError(str(e)) from None


def _quiet_other_ranks() -> None:
    """Under torchrun only rank 0 talks: the others' stdout goes nowhere (errors still show)."""
    from fastssl.train import distributed
    if not distributed.from_env().is_main:
        sys.stdout = open(os.devnull, "w")


def _join(d, device: str) -> None:
    """Under torchrun: join the process group (a no-op for one process)."""
    from fastssl.train import distributed
    try:
        distributed.init(d, device)
    except (RuntimeError, ValueError, KeyError) as e:
        raise click.UsageError(f"could not join the torchrun process group: {e}") from None


def _train(ctx, command: str, kw: dict) -> dict:
    """Set up (or resume) a training run and run it; a run stopped early exits with its code
    after saying why and how to continue."""
    from fastssl.train import distributed
    from fastssl.train.guard import RunStopped
    from fastssl.train.run import run
    from fastssl.train.run_setup import RESUME_OPTIONS, setup_resume, setup_training
    from fastssl.train.tasks import TASKS
    _quiet_other_ranks()
    resume_dir = kw.pop("resume")
    force = kw.pop("force")
    if resume_dir is not None:
        given = [name for name in kw if name not in RESUME_OPTIONS
                 and ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
        if given or force:
            flags = ", ".join("--" + n.replace("_", "-") for n in given + (["force"] if force else []))
            raise click.UsageError(f"--resume continues {resume_dir} with its saved config, so "
                                   f"{flags} cannot be given with it (allowed: --steps, --workers, "
                                   "--decoders, --device, --accumulate)")
        setup = _usage_errors(lambda: setup_resume(
            command, resume_dir, report=click.echo, **{k: kw[k] for k in RESUME_OPTIONS}))
        if setup.finished:
            click.echo(f"{resume_dir} already finished (step {setup.resume.step}); nothing to do "
                       "(pass a larger --steps to train on)")
            ctx.exit(0)
    else:
        if kw["data"] is None:
            raise click.UsageError("Missing option '--data' (or --resume RUN_DIR).")
        setup = _usage_errors(lambda: setup_training(command, force=force, report=click.echo, **kw))
        if setup.init is None and command == "finetune":
            click.echo("no --init: training from scratch")
    d, cfg = setup.dist, setup.cfg
    _join(d, cfg.device)
    try:
        return run(TASKS[command], setup, report=_report)
    except RunStopped as stop:
        if d.is_main:
            click.echo(stop.decision.message, err=True)
            if stop.checkpoint:
                click.echo(f"checkpoint: {stop.checkpoint}", err=True)
            if stop.decision.stop not in ("non-finite", "out-of-memory"):
                launch = "torchrun ... -m fastssl" if d.enabled else "fastssl"
                click.echo(f"continue with: {launch} {command} --resume {cfg.out}", err=True)
        ctx.exit(stop.decision.exit_code)
    finally:
        distributed.shutdown()


def _report(message: str) -> None:
    # Mid-run reports go to stderr, like the progress lines they interrupt.
    click.echo(message, err=True)


def _tensorboard_hint(run_dir: str) -> str:
    # The console script lives next to the interpreter; a plain shell may not have it on PATH.
    exe = shutil.which("tensorboard") or os.path.join(os.path.dirname(sys.executable), "tensorboard")
    return f"TensorBoard: {exe} --logdir {os.path.join(run_dir, 'tb')}"


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
@click.argument("out", type=click.Path(file_okay=False), required=False)
@click.option("--classes", type=click.IntRange(min=2), default=10, show_default=True,
              help="Number of action classes (each a distinct motion pattern).")
@click.option("--motions", type=str, default=None,
              help="Comma-separated subset of motion names to use (default: all; see --list-motions).")
@click.option("--list-motions", is_flag=True, help="Print the motion names and exit (no OUT needed).")
@click.option("--videos-per-class", type=click.IntRange(min=2), default=6, show_default=True,
              help="Videos per class; split into train/test by group, both non-empty.")
@click.option("--frames", type=click.IntRange(min=1), default=48, show_default=True,
              help="Exact number of frames per video.")
@click.option("--size", type=str, default="320x240", show_default=True,
              help="Frame size, WxH or S for SxS (UCF101 is 320x240). Even numbers.")
@click.option("--fps", type=click.IntRange(min=1), default=25, show_default=True)
@click.option("--codec", type=click.Choice(sorted(CODECS)), default="h264", show_default=True,
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
    if out is None:
        raise click.UsageError("Missing argument 'OUT' (the dataset folder to write).")
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
        raise click.UsageError(str(e)) from None
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    n = len(dataset.train) + len(dataset.test)
    seconds = time.perf_counter() - t0
    click.echo(f"wrote {n} videos ({len(dataset.train)} train, {len(dataset.test)} test, "
               f"{dataset.num_classes} classes) to {out} in {seconds:.1f} s "
               f"({n * frames / seconds:.0f} frames/s)")


@main.command()
@data_options(required=False)
@split_option
@out_options("config.json, metrics.jsonl, TensorBoard logs (tb/) and checkpoint-STEP.pt files")
@training_options
@runtime_options
@long_run_options
@click.option("--mode", type=click.Choice(MODES), default="rp", show_default=True,
              help="How the wrong clip is made: rp = random permutation, ss = split and swap, "
                   "pb = played backward.")
@init_options
@click.option("--window", "W", type=int, default=None,
              help="W: frames in the window the N clips are taken from (default 20).")
@click.option("--clips", "N", type=int, default=None,
              help="N: clips per question, i.e. SiameseNet branches (default 6; needs N <= W-D+1).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Peak learning rate (Adam; default from the preset, paper: 1e-4).")
@click.option("--eval-every", type=click.IntRange(min=0), default=None,
              help="Score a fixed set of up to 192 held-out questions every this many steps: the "
                   "learning curve shows when the plateau ends (0 = never; default 100). "
                   "Monitoring only; every held-out question is scored at the end.")
@click.pass_context
def pretrain(ctx, **kw):
    """Pretext training: find the one clip of N whose frames are out of order.

    A run survives interruptions: Ctrl-C or SIGTERM writes a checkpoint at the next step and
    prints the command that continues it (`fastssl pretrain --resume RUN_DIR`).
    """
    result = _train(ctx, "pretrain", kw)
    click.echo(f"held-out pretext accuracy: {result['pretext_accuracy']:.3f} "
               f"(chance {result['chance']:.3f}, {result['questions']} questions)")
    click.echo(f"checkpoint: {result['checkpoint']}")
    click.echo(_tensorboard_hint(result["run_dir"]))


@main.command()
@data_options(required=False)
@split_option
@out_options("config.json, metrics.jsonl, TensorBoard logs (tb/) and checkpoint-STEP.pt files")
@training_options
@runtime_options
@long_run_options
@click.option("--init", type=click.Path(dir_okay=False), default=None,
              help="Pretext checkpoint whose conv1..pool3 initialise the model. Without it (and "
                   "without --inflate): from scratch.")
@init_options
@click.option("--lr-fc", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Learning rate of the new fc layers (paper: 1e-3).")
@click.option("--lr-conv", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Learning rate of the (pretrained) conv layers (paper: 1e-4).")
@click.option("--eval-every", type=click.IntRange(min=0), default=None,
              help="Score a fixed set of up to 512 held-out clips every this many steps, to see "
                   "over-fitting while it happens (0 = never; default 100). Monitoring only.")
@click.pass_context
def finetune(ctx, **kw):
    """Fine-tune 3D-AlexNet for action recognition (from a pretext checkpoint, or scratch).

    Interrupted runs continue with `fastssl finetune --resume RUN_DIR`.
    """
    result = _train(ctx, "finetune", kw)
    if result["heldout_clip_accuracy"] is not None:
        click.echo(f"held-out clip accuracy (monitoring set): {result['heldout_clip_accuracy']:.3f}")
    click.echo(f"checkpoint: {result['checkpoint']}")
    click.echo(_tensorboard_hint(result["run_dir"]))


@main.command()
@click.option("--checkpoint", type=click.Path(dir_okay=False), required=True,
              help="A classifier checkpoint (clip and video accuracy) or a pretext one "
                   "(accuracy on held-out questions).")
@data_options(required=True)
@out_options("eval.json (accuracies, per-video predictions, confusion matrix) and config.json")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Clips (or questions) per forward pass, per rank under torchrun "
                   "(default: the checkpoint's).")
@click.option("--shuffle-frames", "shuffle_seed", type=int, default=None, metavar="SEED",
              help="Shuffle the frames of every test clip (seeded by SEED and the video) before "
                   "classifying it: the accuracy drop shows how much the model relies on "
                   "temporal order. Classifier checkpoints only.")
@click.option("--frozen", is_flag=True,
              help="Score the checkpoint's conv1..pool3 frozen, without fine-tuning (pretext or "
                   "classifier checkpoint, labelled set): every non-overlapping clip of both "
                   "splits (centre crop, no flip) -> conv features averaged over time and space, "
                   "L2-normalised. Retrieval: each test clip queries all training clips by cosine "
                   "similarity, top-k (k = 1, 5, 10, 20, 50) = a training clip of its class among "
                   "the k nearest. Linear probe: logistic regression on the training clips "
                   "(standardised inputs, zero init, L2 0.001, full-batch L-BFGS, at most 500 "
                   "iterations; no randomness), clip and video (mean softmax) accuracy on the test "
                   "clips.")
@runtime_options
def evaluate(checkpoint, shuffle_seed, frozen, **kw):
    """Clip and video accuracy on the test split (or pretext accuracy for a pretext checkpoint;
    with --frozen, retrieval and linear-probe accuracy of the frozen conv features).

    The model, its sizes and the split come from the checkpoint (another split's test list
    overlaps this one's training videos); the options only say where and how to run it.
    """
    from fastssl.train import distributed
    from fastssl.train.evaluation import evaluate as run
    from fastssl.train.run_setup import setup_evaluation
    _quiet_other_ranks()
    if frozen and shuffle_seed is not None:
        raise click.UsageError("--frozen scores the conv features of clips in order; --shuffle-frames "
                               "tests a classifier's reliance on order: give one")
    d = distributed.from_env()
    if frozen and d.world_size > 1:
        raise click.UsageError("--frozen runs in one process: start it without torchrun")
    ckpt, cfg, dataset = _usage_errors(lambda: setup_evaluation(checkpoint, frozen=frozen,
                                                                report=click.echo, **kw))
    if frozen:
        from fastssl.train.frozen import evaluate_frozen
        result = evaluate_frozen(ckpt, cfg, dataset, force=kw["force"])
        click.echo(f"frozen features ({ckpt.kind} checkpoint): retrieval top-1 "
                   f"{result['retrieval_top1']:.3f}  top-5 {result['retrieval_top5']:.3f}  linear probe "
                   f"clip {result['probe_clip_accuracy']:.3f}  video {result['probe_video_accuracy']:.3f}  "
                   f"({result['test_clips']} test / {result['train_clips']} train clips, "
                   f"chance {result['chance']:.3f})")
        click.echo(f"results: {os.path.join(cfg.out, 'eval.json')}")
        return
    if shuffle_seed is not None and ckpt.kind != "classifier":
        raise click.BadParameter("shuffling frames tests a classifier; this is a pretext checkpoint "
                                 "(whose task is the frame order itself)", param_hint="--shuffle-frames")
    _join(d, cfg.device)
    try:
        result = run(ckpt, cfg, dataset, force=kw["force"], shuffle_seed=shuffle_seed, dist=d)
    finally:
        distributed.shutdown()
    if result["kind"] == "pretext":
        click.echo(f"pretext accuracy on held-out questions: {result['pretext_accuracy']:.3f} "
                   f"(chance {result['chance']:.3f}, {result['questions']} questions)")
    else:
        shuffled = " (frames shuffled)" if shuffle_seed is not None else ""
        click.echo(f"clip accuracy{shuffled}: {result['clip_accuracy']:.3f}  video accuracy: "
                   f"{result['video_accuracy']:.3f}  ({result['clips']} clips, {result['videos']} videos, "
                   f"chance {result['chance']:.3f})")
    click.echo(f"results: {os.path.join(cfg.out, 'eval.json')}")


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False, exists=True))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
def export(checkpoint, out, force):
    """The backbone of CHECKPOINT as a plain state dict in OUT, for other code.

    \b
    ResNets (r3d_18, mc3_18, r2plus1d_18): torchvision's layout without fc, so
      torchvision.models.video.r3d_18().load_state_dict(torch.load(OUT), strict=False)
      takes it (only fc stays as initialised); 3D-AlexNet: fastssl's conv1..pool3 keys.
    Read it with torch.load(OUT, weights_only=True); `fastssl finetune --init OUT` takes it back.
    """
    from fastssl.files import atomic_save
    from fastssl.train.checkpoints import CheckpointError, features_of, read_checkpoint
    try:
        ckpt = read_checkpoint(checkpoint)
    except CheckpointError as e:
        raise click.BadParameter(str(e), param_hint="CHECKPOINT") from None
    if os.path.exists(out) and not force:
        raise click.UsageError(f"{out} exists; pass --force to overwrite it")
    state = {k: v.contiguous() for k, v in features_of(ckpt).items()}  # plain layout for other code
    atomic_save(state, out)
    click.echo(f"wrote {len(state)} tensors of {ckpt.config.arch}'s backbone ({ckpt.kind} checkpoint, "
               f"step {ckpt.step}) to {out}")


# Commands with many options of their own live in their own modules.
from fastssl.cli_bench import bench  # noqa: E402
from fastssl.cli_prepare import prepare  # noqa: E402
from fastssl.cli_replicate import compare, replicate  # noqa: E402

main.add_command(bench)
main.add_command(prepare)
main.add_command(replicate)
main.add_command(compare)

if __name__ == "__main__":
    main()
