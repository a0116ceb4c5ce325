"""`fastssl compare RUN_DIR...`: replicate's table for your own runs (report.py's rows and Reading).

Each RUN_DIR holds an eval.json written by `fastssl evaluate`: a fine-tuned checkpoint's clip and
video accuracy, the same with --shuffle-frames, or with --frozen the frozen-feature scores of a
checkpoint's conv1..pool3. Evaluations of one checkpoint are merged (a plain and a shuffled one
give its drop).

Rows (settings). With --label, one label per RUN_DIR, in order. Otherwise the setting the
checkpoint was trained as, from the config.json of the run that wrote it (the folder of
eval.json's `checkpoint`; RUN_DIR/config.json when that folder is gone):
    Scratch       a fine-tune with neither --init nor --inflate
    Inflated      a fine-tune from --inflate
    RP (folder)   a fine-tune from --init of an RP pretext run on the data folder `folder` (mode and
                  data from that pretext run's config.json), or that pretext checkpoint itself
Units, as in replicate: a pretrained row's unit is its pretext checkpoint (its fine-tunes are
averaged first), Scratch's and Inflated's the fine-tune run. Pretext accuracy: the pretext run's
scores.json, or an evaluation of the pretext checkpoint. The Reading compares every row with
Scratch (or --baseline).
"""
from __future__ import annotations

import json
from pathlib import Path

from fastssl.replicate import report
from fastssl.train.runlog import read_metrics

EVAL, CONFIG, SCORES = "eval.json", "config.json", "scores.json"


class CompareError(ValueError):
    """Run folders that cannot be compared (the CLI prints it as a usage error)."""


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _pretext_label(checkpoint: str) -> str:
    cfg = _json(Path(checkpoint).parent / CONFIG)
    if not cfg or not cfg.get("mode"):
        return f"init {checkpoint}"
    return f"{cfg['mode'].upper()} ({Path(cfg.get('data') or '?').name})"


def _missing(run_dirs: list) -> str:
    lines = []
    for d in run_dirs:
        below = sorted(str(p.parent) for p in Path(d).glob(f"*/{EVAL}"))
        if below:
            more = " ..." if len(below) > 4 else ""
            hint = f"these folders inside it have one: {' '.join(below[:4])}{more}"
        else:
            hint = "write one with `fastssl evaluate --checkpoint CKPT --data DATA --out FOLDER`"
        lines.append(f"  {d}: no {EVAL} ({hint})")
    return "\n".join(lines)


def load(run_dirs: list, labels: list | None = None) -> tuple[dict, dict]:
    """RUN_DIRs -> (fine-tuned checkpoints, pretext checkpoints), each (label, checkpoint) ->
    what their evaluations say; CompareError names every folder without a usable eval.json."""
    if not run_dirs:
        raise CompareError("give at least one run folder")
    if labels and len(labels) != len(run_dirs):
        raise CompareError(f"{len(labels)} --label for {len(run_dirs)} run folders: give one per folder, "
                           "in the same order, or none")
    missing = [d for d in run_dirs if not (Path(d) / EVAL).is_file()]
    if missing:
        raise CompareError(f"no {EVAL} in {len(missing)} of the {len(run_dirs)} run folders:\n"
                           + _missing(missing))
    fine, pre = {}, {}
    for i, d in enumerate(run_dirs):
        ev = _json(Path(d) / EVAL)
        if not isinstance(ev, dict) or "kind" not in ev:
            raise CompareError(f"{Path(d) / EVAL}: not an eval.json written by `fastssl evaluate`")
        ckpt = ev.get("checkpoint") or str(d)
        cfg = _json(Path(ckpt).parent / CONFIG) or _json(Path(d) / CONFIG) or {}
        if ev.get("checkpoint_kind", ev["kind"]) == "pretext":   # --frozen names the checkpoint's kind
            label = labels[i] if labels else _pretext_label(ckpt)
            rec = pre.setdefault((label, ckpt), {"label": label, "unit": ckpt})
        else:
            init = cfg.get("init")
            setting = _pretext_label(init) if init else "Inflated" if cfg.get("inflate") else "Scratch"
            label = labels[i] if labels else setting
            rec = fine.setdefault((label, ckpt), {"label": label, "unit": init or ckpt,
                                                  "pretrained": bool(init)})
            if init:   # the pretext checkpoint is this row's unit: its accuracy counts once
                pre.setdefault((label, init), {"label": label, "unit": init})
            if "train_accuracy" not in rec:
                # the fine-tune's last logged training accuracy (how well it fits its own videos)
                acc = [r["finetune/accuracy"] for r in read_metrics(Path(ckpt).parent) if "finetune/accuracy" in r]
                rec["train_accuracy"] = acc[-1] if acc else None
        rec.setdefault("dirs", []).append(str(d))
        if ev["kind"] == "frozen":
            rec["frozen"] = {k: ev.get(k) for k in report.FROZEN_COLUMNS}
        elif ev["kind"] == "pretext":
            rec["pretext_accuracy"] = ev["pretext_accuracy"]
        elif ev.get("shuffled_frames_seed") is not None:
            rec["shuffled_clip_accuracy"] = ev["clip_accuracy"]
        else:
            rec.update(clip_accuracy=ev["clip_accuracy"], video_accuracy=ev["video_accuracy"],
                       chance=ev.get("chance"))
    for (_, ckpt), rec in pre.items():
        if "pretext_accuracy" not in rec:
            rec["pretext_accuracy"] = (_json(Path(ckpt).parent / SCORES) or {}).get("pretext_accuracy")
    return fine, pre


def summarise(run_dirs: list, labels: list | None = None, baseline: str | None = None) -> dict:
    """Rows (label -> report.setting_row, Scratch first) compared with `baseline` (default
    Scratch, when there is such a row)."""
    fine, pre = load(run_dirs, labels)
    order = list(dict.fromkeys([r["label"] for r in fine.values()] + [r["label"] for r in pre.values()]))
    order.sort(key=lambda name: name != "Scratch")
    if baseline is not None and baseline not in order:
        raise CompareError(f"--baseline {baseline!r}: no such row; the rows are {', '.join(order)}")
    rows = {}
    for name in order:
        ft = [r for r in fine.values() if r["label"] == name and r.get("clip_accuracy") is not None]
        pt = [r for r in pre.values() if r["label"] == name]
        pretrained = bool(pt) or any(r["pretrained"] for r in ft)
        rows[name] = report.setting_row(ft, pt, unit_of=lambda r: r["unit"],
                                        unit="pretext seed" if pretrained else "fine-tune seed")
    reference = baseline or ("Scratch" if "Scratch" in rows else None)
    if reference is not None:
        report.vs_reference(rows, reference)
    chance = next((r.get("chance") for r in fine.values() if r.get("chance")), None)
    return {"title": "fastssl compare", "run_dirs": [str(d) for d in run_dirs], "labels": labels,
            "reference": reference, "finetune_chance": chance, "settings": rows}


def table(summary: dict) -> str:
    """The Markdown table and Reading (replicate's), without the paper's column."""
    rows = summary["settings"]
    labels = {name: name for name in rows}
    lines = [f"# {summary['title']}: {len(summary['run_dirs'])} evaluation folders", "",
             "Mean ± standard error over units: the pretext checkpoint for a pretrained row (its "
             "fine-tunes averaged first), the fine-tune run otherwise; n = units (x fine-tunes each), "
             "† = one pretext checkpoint (spread over its fine-tunes only).", ""]
    lines += report.rows_table(rows, labels)
    ch = summary.get("finetune_chance")
    if ch:
        lines += ["", f"Chance: {100 * ch:.1f}% ({round(1 / ch)} classes)."]
    lines += ["", "## Reading", ""]
    if summary["reference"] is None:
        lines.append("- No Scratch row (a fine-tune without --init): give --baseline LABEL to compare rows.")
    else:
        lines += report.reading(rows, labels, summary["reference"])
    return "\n".join(lines) + "\n"
