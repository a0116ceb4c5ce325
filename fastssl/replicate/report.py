"""The replicate report: a summary dict (results.json), a Markdown table shaped like the paper's
Table 2 (table.md, also printed), and two PNG plots.

Spread: mean ± sample standard deviation over every run of a row (P pretext seeds x K fine-tune
seeds; Scratch gets P x K fine-tune seeds, so every row has the same n). A gap to Scratch is
called "inside the noise" when it is under two standard errors of the difference of means.
"""
from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path

from fastssl.config import PRESETS
from fastssl.replicate.paper import PAPER
from fastssl.replicate.plan import FINETUNE_SETTINGS, Plan

LABELS = {"scratch": "Scratch", "inflated": "Inflated", "rp": "RP", "ss": "SS", "pb": "PB",
          "pb-arrow": "PB, arrow-of-time set *", "control-rp": "RP", "control-ss": "SS",
          "control-pb": "PB", "control-crf-rp": "RP"}
SHORT = {"pb-arrow": "PB (arrow-of-time set)"}
CONTROL_ORDER = ("control-rp", "control-ss", "control-pb", "control-crf-rp")
PLOT_DPI = 80


def stats(values) -> dict | None:
    """mean, sample std (None for one value), n, values; None for no values."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return None
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "n": n, "values": values}


def fmt(s: dict | None, scale: float = 100.0, digits: int = 1) -> str:
    """'mean ± std' in percent (or 'mean' for one value, '–' for none)."""
    if s is None:
        return "–"
    if s["std"] is None:
        return f"{scale * s['mean']:.{digits}f}"
    return f"{scale * s['mean']:.{digits}f} ± {scale * s['std']:.{digits}f}"


def compare(a: dict | None, b: dict | None) -> dict | None:
    """a - b with the standard error of the difference of means (Welch); `noise` when the gap
    is at most 2 standard errors, and `n_needed`: runs per setting at which this gap, with these
    spreads, would be 2 standard errors (2 sqrt((sa^2 + sb^2) / n) = |diff|)."""
    if a is None or b is None or a["std"] is None or b["std"] is None:
        return None
    diff = a["mean"] - b["mean"]
    se = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
    var = a["std"] ** 2 + b["std"] ** 2
    n_needed = math.ceil(8 * var / diff ** 2) if diff != 0 else None
    return {"diff": diff, "se": se, "noise": abs(diff) <= 2 * se, "n_needed": n_needed}


def _machine(load_start) -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:  # pragma: no cover
        torch_version = None
    return {"nproc": os.cpu_count(), "cpu": cpu, "torch": torch_version, "platform": platform.platform(),
            "load_start": list(load_start) if load_start else None,
            "load_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def _mean_curve(curves: list) -> list:
    """Mean over runs at each step logged by all of them."""
    if not curves:
        return []
    by_step = [dict((s, v) for s, v in c) for c in curves]
    steps = sorted(set.intersection(*(set(d) for d in by_step)))
    return [[s, sum(d[s] for d in by_step) / len(by_step)] for s in steps]


def summarise(plan: Plan, results: list, *, wall_seconds: float, command_line: str = "",
              crf_control: bool = False, load_start=None) -> dict:
    """Everything results.json holds, from the per-run result dicts."""
    pretext, finetune = {}, {}
    for r in results:
        (pretext if r["kind"] == "pretext" else finetune).setdefault(r["setting"], []).append(r)
    settings = {}
    for name in FINETUNE_SETTINGS:
        ft = finetune.get(name, [])
        pre = pretext.get(name, [])
        row = {
            "pretext_runs": len(pre), "finetune_runs": len(ft),
            "pretext_accuracy": stats(r["pretext_accuracy"] for r in pre),
            "clip_accuracy": stats(r["clip_accuracy"] for r in ft),
            "video_accuracy": stats(r["video_accuracy"] for r in ft),
            "shuffled_clip_accuracy": stats(r["shuffled_clip_accuracy"] for r in ft),
            "shuffled_drop": stats(r["clip_accuracy"] - r["shuffled_clip_accuracy"] for r in ft),
            "train_accuracy": stats(r.get("train_accuracy") for r in ft),
            "pretext_curve": _mean_curve([r["curve"] for r in pre]),
        }
        settings[name] = row
    for name in FINETUNE_SETTINGS[1:]:
        settings[name]["vs_scratch"] = {
            k: compare(settings[name][k], settings["scratch"][k]) for k in ("clip_accuracy", "video_accuracy")}
    controls = {}
    for name, runs in pretext.items():
        if name.startswith("control-"):
            acc = stats(r["pretext_accuracy"] for r in runs)
            q = sum(r.get("questions") or 0 for r in runs)
            chance = runs[0].get("chance") or 1 / 6
            se = math.sqrt(chance * (1 - chance) / q) if q else None
            controls[name] = {"pretext_accuracy": acc, "questions": q, "chance": chance, "se": se,
                              "at_chance": None if se is None else abs(acc["mean"] - chance) < 3 * se,
                              "dataset": runs[0]["dataset"], "mode": runs[0]["mode"],
                              "pretext_curve": _mean_curve([r["curve"] for r in runs])}
    ft_chance = next((r["chance"] for r in results if r["kind"] == "finetune"), None)
    return {
        "title": "fastssl replicate: the paper's Table 2 in miniature (synthetic videos)",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": command_line, "machine": _machine(load_start),
        "wall_seconds": round(wall_seconds, 1), "sizes": plan.sizes.to_dict(),
        "pretext_seeds": plan.pretext_seeds, "seeds": plan.seeds, "crf_control": crf_control,
        "finetune_chance": ft_chance, "pretext_chance": 1 / 6,
        "settings": settings, "controls": controls, "paper": PAPER, "runs": results,
    }


def _paper_cell(key: str) -> str:
    p = PAPER.get(key)
    if p is None:
        return "–"
    return " / ".join("–" if p[k] is None else f"{p[k]:.2f}" for k in ("pretext", "clip", "video"))


def _verdict(name: str, row: dict) -> str:
    c = (row.get("vs_scratch") or {}).get("clip_accuracy")
    if c is None:
        return f"- {SHORT.get(name, LABELS[name])} vs Scratch: not enough runs to compare (need >= 2 per row)."
    gap = f"{100 * c['diff']:+.1f} pts clip accuracy (standard error {100 * c['se']:.1f})"
    if c["noise"]:
        more = (f"; with these spreads, about {c['n_needed']} runs per setting would make a gap this "
                f"size 2 standard errors" if c["n_needed"] else "")
        return f"- {SHORT.get(name, LABELS[name])} vs Scratch: {gap}: **inside the noise**{more}."
    return f"- {SHORT.get(name, LABELS[name])} vs Scratch: {gap}: **outside 2 standard errors**."


def table(summary: dict) -> str:
    """The Markdown report (table.md)."""
    s, m = summary["sizes"], summary["machine"]
    P, K = summary["pretext_seeds"], summary["seeds"]
    load = lambda v: "n/a" if not v else " ".join(f"{x:.2f}" for x in v)  # noqa: E731
    lines = [f"# {summary['title']}", "",
             f"- Command: `{summary['command']}`",
             f"- Machine: {m['nproc']} cores ({m['cpu']}), torch {m['torch']}; load average (1/5/15 min) "
             f"at start {load(m['load_start'])}, at end {load(m['load_end'])}",
             f"- Date: {summary['date']}; wall time {summary['wall_seconds'] / 60:.1f} min"
             + ("" if summary.get("finished_runs") is None else
                f" (sum of the run times; {summary['finished_runs']} of {summary['planned_runs']} planned "
                f"runs finished{'' if summary['finished_runs'] == summary['planned_runs'] else ': partial'})"),
             f"- Seeds: P={P} pretext seed(s) per mode x K={K} fine-tune seed(s) per pretext checkpoint; "
             f"Scratch: P x K = {P * K} fine-tune seeds. Mean ± sample std over the n runs of each row.",
             f"- Budgets (equal across settings): pretext {s['pretext_steps']} steps, fine-tune "
             f"{s['finetune_steps']} steps; preset `{s['preset']}` (batch "
             f"{s['batch_size'] or PRESETS[s['preset']]['batch_size']}); videos {s['size'][0]}x{s['size'][1]}, {s['frames']} frames.",
             "",
             "| Setting | n | Pretext acc. (%) | Clip acc. (%) | Video acc. (%) | Clip acc., frames "
             "shuffled (%) | Drop (pts) | Fine-tune train acc. (%) | Paper: pretext / clip / video |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows = summary["settings"]
    for name in ("scratch", "inflated", "rp", "ss", "pb", "pb-arrow"):
        if name == "inflated":
            lines.append(f"| Inflated | – | not run | not run | not run | not run | – | – | {_paper_cell(name)} |")
            continue
        r = rows[name]
        if not r["finetune_runs"] and not r["pretext_runs"]:
            lines.append(f"| {LABELS[name]} | – | not run | not run | not run | not run | – | – | "
                         f"{_paper_cell(name)} |")
            continue
        pre = "–" if name == "scratch" else fmt(r["pretext_accuracy"])
        lines.append(f"| {LABELS[name]} | {r['finetune_runs']} | {pre} | {fmt(r['clip_accuracy'])} | "
                     f"{fmt(r['video_accuracy'])} | {fmt(r['shuffled_clip_accuracy'])} | "
                     f"{fmt(r['shuffled_drop'])} | {fmt(r['train_accuracy'])} | {_paper_cell(name)} |")
    ch = summary.get("finetune_chance")
    lines += ["",
              f"Chance: pretext {100 / 6:.1f}% (N=6 clips), fine-tune {100 * ch:.1f}% "
              f"({round(1 / ch)} classes)." if ch else f"Chance: pretext {100 / 6:.1f}%.",
              "\\* Beyond the paper: PB pretrained on dissipative motions only (the paper's \"removing "
              "ambiguity of PB\" future work). Pretext acc. is on held-out questions from the pretext "
              "set's own test videos (the arrow set's, for this row). Drop = clip accuracy minus clip "
              "accuracy with each test clip's frames shuffled (seeded): how much the classifier "
              "relies on frame order.", "",
              "## Reading", ""]
    lines += [_verdict(n, rows[n]) for n in FINETUNE_SETTINGS[1:] if rows[n]["finetune_runs"]]
    if summary["controls"]:
        lines += ["", "## Shortcut control: pretext on static scenes (no motion at all)", "",
                  "| Mode | Encoding | Pretext acc. (%) | Questions | At chance (within 3 s.e.)? |",
                  "|---|---|---|---|---|"]
        for name, c in sorted(summary["controls"].items(),
                              key=lambda kv: CONTROL_ORDER.index(kv[0]) if kv[0] in CONTROL_ORDER else 99):
            enc = ("crf (synth's default)" if c["dataset"] == "static-crf"
                   else "cqp (constant quantiser, replicate's sets)")
            at = "–" if c["at_chance"] is None else ("yes" if c["at_chance"] else "**no**")
            lines.append(f"| {LABELS.get(name, name)} | {enc} | {fmt(c['pretext_accuracy'])} | "
                         f"{c['questions']} | {at} |")
    drift = summary.get("static_frame_drift") or {}
    if drift:
        lines += ["", "Decoded static videos, mean |frame t - frame 0| in 0-255 levels (frames 1-7 / "
                  "frames 8+ / largest): " + "; ".join(
                      f"{'crf' if n == 'static-crf' else 'cqp'} {d['first_gop']:.3f} / {d['later']:.3f} / "
                      f"{d['max']:.3f}" for n, d in sorted(drift.items())) + ". With crf the first GOP "
                  "is coded at another quality than the rest, so pixels tell early frames from late "
                  "ones without any motion; cqp removes that step (what is left repeats every GOP)."]
    lines += ["", "Plots: `pretext_curves.png` (training pretext accuracy per mode, mean over seeds), "
              "`finetune_accuracy.png` (clip accuracy per setting, every seed). Numbers: `results.json`.", ""]
    return "\n".join(lines)


def plot(summary: dict, out: Path) -> list[str]:
    """pretext_curves.png and finetune_accuracy.png under out; returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, row in summary["settings"].items():
        if row["pretext_curve"]:
            xs, ys = zip(*row["pretext_curve"])
            ax.plot(xs, [100 * y for y in ys], label=LABELS[name])
    for name, c in sorted(summary["controls"].items()):
        if c["pretext_curve"]:
            xs, ys = zip(*c["pretext_curve"])
            enc = "crf" if c["dataset"] == "static-crf" else "cqp"
            ax.plot(xs, [100 * y for y in ys], ls="--", lw=1, label=f"static ({enc}), {LABELS[name]}")
    ax.axhline(100 / 6, color="grey", lw=0.8, ls=":", label="chance")
    ax.set(xlabel="pretext step", ylabel="training pretext accuracy (%)", ylim=(0, 100),
           title="Pretext accuracy (mean over pretext seeds)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    paths.append(str(out / "pretext_curves.png"))
    fig.savefig(paths[-1], dpi=PLOT_DPI)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    names = [n for n in summary["settings"] if summary["settings"][n]["clip_accuracy"]]
    for i, name in enumerate(names):
        r = summary["settings"][name]
        vals = [100 * v for v in r["clip_accuracy"]["values"]]
        shuf = [100 * v for v in r["shuffled_clip_accuracy"]["values"]]
        ax.scatter([i - 0.1] * len(vals), vals, color="C0", s=18, label="clip acc." if i == 0 else None)
        ax.scatter([i + 0.1] * len(shuf), shuf, facecolors="none", edgecolors="C3", s=18,
                   label="frames shuffled" if i == 0 else None)
        sd = r["clip_accuracy"]["std"] or 0
        ax.errorbar(i - 0.1, 100 * r["clip_accuracy"]["mean"], yerr=100 * sd, fmt="_", color="k",
                    capsize=4, ms=14)
    if summary.get("finetune_chance"):
        ax.axhline(100 * summary["finetune_chance"], color="grey", lw=0.8, ls=":", label="chance")
    ax.set_xticks(range(len(names)), [LABELS[n].replace(", arrow-of-time set *", "\n(arrow set)")
                                      for n in names])
    ax.set(ylabel="test clip accuracy (%)", title="Fine-tune accuracy per setting (every seed; mean ± std)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(str(out / "finetune_accuracy.png"))
    fig.savefig(paths[-1], dpi=PLOT_DPI)
    plt.close(fig)
    return paths


def write(out: str | os.PathLike, summary: dict) -> str:
    """table.md, results.json and the plots under out; returns the table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = table(summary)
    (out / "table.md").write_text(text)
    (out / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot(summary, out)
    return text
