"""`fastssl replicate`: the paper's Table 2 in miniature, in one command (see fastssl.replicate);
`fastssl compare`: the same table for your own runs (fastssl.replicate.compare)."""
from __future__ import annotations

import dataclasses
import shlex

import click

from fastssl.replicate.plan import (CONTROL_MODES, DEFAULT_PB_PRETEXT_SEEDS, DEFAULT_PRETEXT_SEEDS,
                                    DEFAULT_SEEDS, FINETUNE_SETTINGS, SIZES, make_plan)


def _command_line(ctx: click.Context) -> str:
    """The command as given (options from the command line only), for the report."""
    parts = ["fastssl", "replicate"]
    for param in ctx.command.params:
        if ctx.get_parameter_source(param.name) != click.core.ParameterSource.COMMANDLINE:
            continue
        value = ctx.params[param.name]
        if getattr(param, "is_flag", False):
            flag = param.opts[0] if value else (param.secondary_opts or param.opts)[0]
            parts.append(flag)
        else:
            parts += [param.opts[0], shlex.quote(str(value))]
    return " ".join(parts)


def _positive(ctx, param, value):
    if value is not None and value < 1:
        raise click.BadParameter(f"{value}: must be at least 1")
    return value


@click.command("replicate", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", default="runs/replicate", show_default=True, type=click.Path(file_okay=False),
              help="Where the report goes: table.md, results.json, pretext_curves.png, "
                   "finetune_accuracy.png.")
@click.option("--work", default=None, type=click.Path(file_okay=False),
              help="Where the datasets and run folders go (large; TensorBoard logs under "
                   "WORK/runs).  [default: OUT/work]")
@click.option("--pretext-seeds", "pretext_seeds", type=int, default=None, callback=_positive,
              help="P: pretext runs of RP and SS, each with its own seed: the unit of a pretrained "
                   f"row's spread.  [default: {DEFAULT_PRETEXT_SEEDS}; --quick: 1]")
@click.option("--pb-pretext-seeds", "pb_pretext_seeds", type=int, default=DEFAULT_PB_PRETEXT_SEEDS,
              callback=_positive, show_default=True,
              help="Pretext runs of PB and PB-arrow (at most P; the table marks rows with one).")
@click.option("--seeds", type=int, default=None, callback=_positive,
              help="K: fine-tune seeds per pretext checkpoint, averaged within it; Scratch gets "
                   f"P x K fine-tune seeds (its unit).  [default: {DEFAULT_SEEDS}; --quick: 1]")
@click.option("--quick", is_flag=True,
              help="A smaller run (fewer videos and steps, P=1, K=1, one static control): a look "
                   "at the pipeline, not a result (too few steps and seeds to show the claim).")
@click.option("--pretext-steps", "pretext_steps", type=int, default=None, callback=_positive,
              help=f"Steps of every pretext run (equal across modes).  [default: "
                   f"{SIZES['default'].pretext_steps}; --quick: {SIZES['quick'].pretext_steps}]")
@click.option("--finetune-steps", "finetune_steps", type=int, default=None, callback=_positive,
              help=f"Steps of every fine-tune run, Scratch included.  [default: "
                   f"{SIZES['default'].finetune_steps}; --quick: {SIZES['quick'].finetune_steps}]")
@click.option("--preset", type=click.Choice(["tiny", "small", "paper"]), default=None,
              help="Model/input preset for every run.  [default: tiny (64 px, width 0.25) on CPU; "
                   "the paper preset is accepted unchanged on a GPU]")
@click.option("--no-controls", "no_controls", is_flag=True,
              help="Skip the static-scene shortcut controls.")
@click.option("--crf-control", "crf_control", is_flag=True,
              help="Add RP on static scenes encoded with synth's default crf (one more pretext run): "
                   "shows the first-GOP quality step a model can read the frame order from.")
@click.option("--only", default=None, metavar="SETTINGS",
              help="Run only these comma-separated settings (scratch, rp, ss, pb, pb-arrow) and no "
                   "controls; the other rows read 'not run'. `make demo` uses --only scratch,rp.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None,
              help="Where to train.  [default: cuda if torch sees a GPU, else cpu]")
@click.option("--workers", type=int, default=None,
              help="Decoding worker processes per run.  [default: min(4, cores)]")
@click.option("--force", is_flag=True,
              help="Delete WORK's datasets and runs and start over. Without it, a second "
                   "`replicate` with the same sizes skips finished runs and resumes the one that "
                   "was interrupted (more --seeds or --pretext-seeds reuse the finished ones).")
@click.option("--report-only", "report_only", is_flag=True,
              help="Run nothing: write the report from the runs that finished (e.g. after "
                   "stopping a long replicate); n in each row says how many runs it averages.")
@click.option("--progress/--no-progress", default=False, show_default=True,
              help="Per-run progress bars.")
def replicate(out, work, pretext_seeds, pb_pretext_seeds, seeds, quick, pretext_steps, finetune_steps,
              preset, no_controls, crf_control, only, device, workers, force, report_only, progress):
    """Table 2 of the paper in miniature, on synthetic videos, in one command.

    \b
    Writes the datasets (classes = motions, looks random per video):
      labelled  10 classes, 18 training + 10 test videos each (96x72, 48 frames)
      pretext   the same motions, other videos: pretraining only, labels never read
      arrow     dissipative motions only (friction, inelastic bounce, shrink-and-fade),
                none of their time-reverses: PB made learnable
      static    no motion at all: the shortcut control (every mode must stay at chance),
                scored on >= 1000 held-out questions
    then runs Scratch, RP, SS, PB and PB-on-arrow (equal step budgets: pretext 1500,
    fine-tune 600), evaluates clip / video accuracy, the accuracy with each test clip's
    frames shuffled (the drop = reliance on frame order) and the frozen features (retrieval
    top-1/5 and a linear probe on conv1..pool3, random weights for Scratch), and writes a
    Markdown table beside the paper's figures (mean ± standard error over pretext seeds;
    Scratch: over fine-tune seeds), results.json and two PNG plots (the held-out pretext
    accuracy curves; fine-tune accuracy per run).

    \b
    Default plan: RP and SS 3 pretext seeds, PB and PB-arrow 1, 2 fine-tunes each, Scratch 6,
    3 static controls: estimated ~121 min on an idle 2-core CPU (scaled from the step rates
    `make demo` measured, fastssl/replicate/plan.py; the whole plan is not yet measured).
    Examples:
      fastssl replicate --quick --out runs/rep-quick
      fastssl replicate --out bench/replicate --work runs/replicate
      fastssl replicate --out bench/replicate --work runs/replicate --seeds 4   # add seeds later
    """
    from fastssl.replicate.runner import ReplicateError, replicate as run_replicate

    base = SIZES["quick" if quick else "default"]
    changes = {}
    if pretext_steps is not None:
        changes["pretext_steps"] = pretext_steps
    if finetune_steps is not None:
        changes["finetune_steps"] = finetune_steps
    if preset is not None:
        changes["preset"] = preset
    if preset in ("small", "paper"):
        changes["size"] = (320, 240) if preset == "paper" else (171, 128)
    sizes = dataclasses.replace(base, **changes)
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise click.BadParameter("CUDA was asked for but torch sees no GPU", param_hint="--device")
    if workers is not None and workers < 0:
        raise click.BadParameter(f"{workers}: must be 0 or more", param_hint="--workers")
    P = pretext_seeds or (1 if quick else DEFAULT_PRETEXT_SEEDS)
    K = seeds or (1 if quick else DEFAULT_SEEDS)
    if only is not None:
        only = [s.strip() for s in only.split(",") if s.strip()]
        unknown = [s for s in only if s not in FINETUNE_SETTINGS]
        if unknown or not only:
            raise click.BadParameter(f"{unknown or only}: choose from {', '.join(FINETUNE_SETTINGS)}",
                                     param_hint="--only")
        no_controls = True
    controls = () if no_controls else (("rp",) if quick else CONTROL_MODES)
    plan = make_plan(sizes, P, K, pb_pretext_seeds=pb_pretext_seeds, controls=controls, only=only)
    command = _command_line(click.get_current_context())
    try:
        run_replicate(out, plan, work=work, device=device, workers=workers, force=force, progress=progress,
                      crf_control=crf_control and not no_controls, command_line=command, report=click.echo,
                      report_only=report_only)
    except ReplicateError as e:
        raise click.UsageError(str(e)) from None


@click.command("compare", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--label", "labels", multiple=True, metavar="LABEL",
              help="The row of each RUN_DIR, once per RUN_DIR in the same order (default: the "
                   "setting read from the runs' config.json: Scratch, Inflated, or the pretext mode "
                   "and data of --init).")
@click.option("--baseline", default=None, metavar="LABEL",
              help="The row the Reading compares every other row with.  [default: Scratch]")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Also write table.md and results.json into this folder.")
def compare(run_dirs, labels, baseline, out):
    """Replicate's table for your own runs: mean ± standard error per setting.

    \b
    Each RUN_DIR holds an eval.json from `fastssl evaluate` (plain, --shuffle-frames or
    --frozen; evaluations of one checkpoint are merged, so plain + shuffled give the drop).
    Rows: the setting each checkpoint was trained as (from config.json), or --label.
    Units: a pretrained row averages the fine-tunes of each pretext checkpoint first and
    its spread is over pretext checkpoints; Scratch's is over fine-tune runs.
    Example:
      fastssl compare runs/scratch-*/eval runs/rp-*-ft*/eval runs/rp-*-ft*/eval-shuffled
    """
    from fastssl.replicate import compare as compare_mod
    from fastssl.replicate import report

    try:
        summary = compare_mod.summarise(list(run_dirs), list(labels) or None, baseline)
    except compare_mod.CompareError as e:
        raise click.UsageError(str(e)) from None
    text = compare_mod.table(summary)
    click.echo(text)
    if out is not None:
        report.write(out, summary, text=text, plots=False)
        click.echo(f"written: {out}/table.md, {out}/results.json")
