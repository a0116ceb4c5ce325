"""The experiment's datasets, written by `fastssl.data.synth` under OUT/data/.

    labelled   the first `classes` motions of MOTIONS (class = motion, looks random per video),
               few training videos per class: what Scratch and every fine-tune train on
    pretext    the same motions, other videos (another seed): used only for pretraining, its
               labels never read (an "unlabelled" set in all but the folder layout)
    arrow      dissipative motions only, none of their time-reverses: PB made learnable
    static     no motion at all (`static`, a control motion outside synth's class list)

All are h264, GOP 8, written with constant-quantiser rate control ("cqp", see
`fastssl.data.synth.writer.RATE_CONTROLS`): with synth's default crf, x264 codes the first GOP at
a different quality from the later ones, so the pixels of even a static scene tell which frames
come first. `static-crf` (the same static scenes, crf) keeps that artefact on purpose, so the
report can show its size.
"""
from __future__ import annotations

import json
from pathlib import Path

from fastssl.data.dataset import DatasetError, load_dataset
from fastssl.data.synth import MOTIONS, make_synthetic_dataset
from fastssl.replicate.plan import Sizes

# Their time-reverse is physically implausible: each loses kinetic energy to friction or
# inelastic impacts, or fades away, and never gains it back. Left out: their reverses
# (start_from_rest is friction played backward, grow is shrink_fade's), spiral_in (constant
# linear speed, so no energy is lost: spiralling out at constant speed is as plausible), and
# every time-symmetric motion.
ARROW_MOTIONS = ("friction_slowdown", "inelastic_bounce", "shrink_fade")
ARROW_WHY = {
    "friction_slowdown": "slides to a stop (backward: starts by itself and speeds up)",
    "inelastic_bounce": "bounces lower and lower and settles (backward: leaps ever higher from rest)",
    "shrink_fade": "shrinks and fades away (backward: appears from nothing)",
}
LEFT_OUT = {"start_from_rest": "friction_slowdown played backward", "grow": "shrink_fade's reverse",
            "spiral_in": "constant speed, no energy lost: its reverse is plausible"}

SEEDS = {"labelled": 1, "pretext": 2, "arrow": 3, "static": 4, "static-crf": 4}


def _labelled_split(train_per_class: int):
    """Test split rule for the labelled set: the first `train_per_class` videos train."""
    return lambda i: i >= train_per_class


def specs(sizes: Sizes, *, crf_control: bool = False) -> dict[str, dict]:
    """name -> make_synthetic_dataset arguments (what the folder is built from)."""
    common = dict(frames=sizes.frames, size=tuple(sizes.size), codec="h264", gop=8, fps=25,
                  rate_control="cqp")
    motions = list(MOTIONS)[:sizes.classes]
    out = {
        "labelled": dict(common, classes=sizes.classes, motions=motions,
                         videos_per_class=sizes.train_per_class + sizes.test_per_class,
                         train_per_class=sizes.train_per_class, seed=SEEDS["labelled"]),
        "pretext": dict(common, classes=sizes.classes, motions=motions,
                        videos_per_class=sizes.pretext_per_motion, seed=SEEDS["pretext"]),
        "arrow": dict(common, classes=len(ARROW_MOTIONS), motions=list(ARROW_MOTIONS),
                      videos_per_class=sizes.arrow_per_motion, seed=SEEDS["arrow"]),
        # 2 folders (synth needs >= 2 classes; "StaticFast" is just as static)
        "static": dict(common, classes=2, motions=["static"],
                       videos_per_class=max(2, sizes.control_videos // 2), seed=SEEDS["static"]),
    }
    if crf_control:
        out["static-crf"] = dict(out["static"], rate_control="crf")
    return out


def build(root: str | Path, sizes: Sizes, names=None, *, force: bool = False, report=print,
          crf_control: bool = False) -> dict[str, str]:
    """Write the datasets that are missing (or differ from their spec) under root/; return
    name -> folder. A folder whose spec.json matches and that loads is reused."""
    root = Path(root)
    folders = {}
    for name, spec in specs(sizes, crf_control=crf_control).items():
        if names is not None and name not in names:
            continue
        folder = root / name
        folders[name] = str(folder)
        stamp = folder / "replicate-spec.json"
        want = json.dumps(spec, sort_keys=True)
        if not force and stamp.is_file() and stamp.read_text() == want:
            try:
                load_dataset(folder, check=False)
                continue
            except DatasetError:
                pass
        args = dict(spec)
        train_per_class = args.pop("train_per_class", None)
        if train_per_class is not None:
            args["test_group"] = _labelled_split(train_per_class)
        report(f"data: writing {name} ({args['classes']} x {args['videos_per_class']} videos) -> {folder}")
        if stamp.exists():
            stamp.unlink()
        make_synthetic_dataset(folder, progress=False, force=True, **args)
        stamp.write_text(want)
    return folders


def describe(sizes: Sizes) -> list[str]:
    """Lines for the table file: what each set holds."""
    s = sizes
    motions = list(MOTIONS)[:s.classes]
    return [
        f"- **labelled** (fine-tune and test): {s.classes} classes = motions "
        f"({', '.join(motions)}), {s.train_per_class} training + {s.test_per_class} test videos per "
        f"class, {s.size[0]}x{s.size[1]}, {s.frames} frames; looks (shapes, textures, colours, "
        f"backgrounds) are random per video, so only the motion tells the class.",
        f"- **pretext** (unlabelled): the same {s.classes} motions, {s.pretext_per_motion} other "
        f"videos each (another seed; 2/3 train the pretext, 1/3 give the held-out pretext "
        f"accuracy). Its labels are never read: it stands in for `prepare --unlabelled`.",
        f"- **arrow** (arrow of time, PB made learnable): {', '.join(ARROW_MOTIONS)}, "
        f"{s.arrow_per_motion} videos each. " + "; ".join(f"`{k}` {v}" for k, v in ARROW_WHY.items())
        + ". Left out: " + "; ".join(f"`{k}` ({v})" for k, v in LEFT_OUT.items())
        + ", and every time-symmetric motion.",
        f"- **static** (shortcut control): {s.control_videos} videos of the `static` control motion "
        f"(an object that never moves; not in synth's MOTIONS), same size, codec and GOP.",
        "- All: h264, GOP 8, no B-frames, constant quantiser 20 (`rate_control=\"cqp\"`).",
    ]


def static_frame_drift(folder: str | Path, gop: int = 8) -> dict:
    """How much the decoded frames of a static set's videos differ from their first frame
    (0-255 levels, mean |frame t - frame 0| over pixels, then over videos): the order signal a
    codec leaves in a scene that does not move. `first_gop` is the mean over frames 1..gop-1,
    `later` over frames gop.. (crf: ~0 vs several levels: the first GOP is coded differently)."""
    import av
    import numpy as np

    ds = load_dataset(folder, check=False)
    per_video = []
    for video in ds.train + ds.test:
        with av.open(video.path) as c:
            frames = [f.to_ndarray(format="rgb24").astype(np.float32) for f in c.decode(video=0)]
        per_video.append([float(np.abs(f - frames[0]).mean()) for f in frames])
    n = min(len(v) for v in per_video)
    mean = [sum(v[t] for v in per_video) / len(per_video) for t in range(n)]
    return {"videos": len(per_video), "per_frame": [round(x, 4) for x in mean],
            "first_gop": round(float(np.mean(mean[1:gop])) if n > 1 else 0.0, 4),
            "later": round(float(np.mean(mean[gop:])) if n > gop else 0.0, 4),
            "max": round(max(mean), 4)}
