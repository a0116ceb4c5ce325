"""`fastssl prepare SRC OUT`: the click command (registered in cli.py with main.add_command)."""
from __future__ import annotations

import os

import click

from fastssl.data.encode import CODECS


@click.command("prepare")
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--codec", type=click.Choice(sorted(CODECS)), default="h264", show_default=True,
              help="h264 for GPU hosts (NVDEC); vp9 or mjpeg where DALI decodes on the CPU.")
@click.option("--splits", "splits_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder with the split lists, when they are not in SRC: UCF101's "
                   "ucfTrainTestlist/ or HMDB51's testTrainMulti_7030_splits/.")
@click.option("--unlabelled", is_flag=True,
              help="Any folder of videos, searched recursively: one pseudo-class, a seeded 10% "
                   "held out as the test split. For pretext training only (no finetune/evaluate).")
@click.option("--test-fraction", type=float, default=0.3, show_default=True,
              help="Class folders without lists: fraction of each class's groups held out as test "
                   "(UCF-style groups _gXX_ stay together; the three splits hold out different ones).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the split for class folders and --unlabelled.")
@click.option("--short-side", type=click.IntRange(min=16), default=None,
              help="Scale so the shorter side has this many pixels (default: keep the size).")
@click.option("--gop", type=click.IntRange(min=1), default=None,
              help="Keyframe interval (default 8: measured, see bench/RESULTS.md). Shorter = cheaper "
                   "seeks, bigger files.")
@click.option("--min-frames", type=click.IntRange(min=1), default=20, show_default=True,
              help="Sources with fewer frames are reported and left out (20 = the paper's window).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: the number of cores).")
@click.option("--strict", is_flag=True, help="Any unusable source is an error (exit status 1).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def prepare(src, out, codec, splits_dir, unlabelled, test_fraction, seed, short_side, gop,
            min_frames, jobs, strict, no_progress):
    """Transcode the videos in SRC into a dataset folder OUT that every command reads.

    \b
    SRC may be:
      UCF101   class folders of .avi, with classInd.txt and trainlist0S/testlist0S.txt in SRC,
               SRC/ucfTrainTestlist/ or --splits DIR
      HMDB51   class folders, with <class>_test_split{1,2,3}.txt (1 train, 2 test, 0 unused)
               in SRC, SRC/testTrainMulti_7030_splits/ or --splits DIR
      folders  one folder per class, no lists: a seeded split (--test-fraction, --seed)
      --unlabelled  any folder of videos (recursively): pretext training only

    \b
    OUT gets: videos/<Class>/<name>.mp4|webm|avi (8-bit 4:2:0, upright, even sizes, constant
    frame rate with pts = frame index, keyframe every --gop frames, no B-frames, no audio),
    index.csv, classInd.txt, trainlist0S/testlist0S.txt for each split the source has,
    prepare.json (the settings), prepare_report.csv (every source left out, and why).

    Every output is verified (frame count, timestamps, PSNR against the source) before it is
    renamed into place: an interrupted run is resumed by running the same command again.

    \b
    Examples:
      fastssl prepare UCF-101 data/ucf --splits ucfTrainTestlist
      fastssl prepare hmdb51 data/hmdb --splits testTrainMulti_7030_splits --codec vp9
      fastssl prepare ~/footage data/mine --unlabelled --short-side 128
    """
    from fastssl.data.prepare import DEFAULT_GOP, PrepareError, SourceError, prepare_dataset

    if not 0 < test_fraction < 1:
        raise click.BadParameter(f"{test_fraction}: must be between 0 and 1", param_hint="--test-fraction")
    if unlabelled and splits_dir:
        raise click.UsageError("--unlabelled takes no split lists (--splits)")
    if os.path.abspath(out) == os.path.abspath(src):
        raise click.BadParameter("OUT must differ from SRC", param_hint="OUT")
    try:
        summary = prepare_dataset(src, out, codec=codec, gop=gop or DEFAULT_GOP, short_side=short_side,
                                  min_frames=min_frames, layout="unlabelled" if unlabelled else "auto",
                                  splits_dir=splits_dir, test_fraction=test_fraction, seed=seed,
                                  jobs=jobs, strict=strict, progress=not no_progress, echo=click.echo)
    except SourceError as e:
        raise click.BadParameter(str(e), param_hint="SRC") from None
    except PrepareError as e:
        if strict and "--strict" in str(e):
            raise click.ClickException(str(e)) from None
        raise click.UsageError(str(e)) from None
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    click.echo(summary.line())
    if summary.layout == "unlabelled":
        click.echo("unlabelled: use it for `fastssl pretrain` only (it has no classes to finetune on)")
