"""The replicate report: a summary dict (results.json), a Markdown table shaped like the paper's
Table 2 (table.md, also printed), and two PNG plots. `fastssl compare` renders its own runs with
the same rows and Reading (setting_row, vs_reference, rows_table, reading).

Spread: mean ± standard error over a row's *units*. A pretrained setting's unit is its pretext
seed: its K fine-tunes share one checkpoint, so they are averaged first and count once (counting
them as K samples would shrink the error bar with the cheap seeds, not the expensive ones).
Scratch's unit is the fine-tune seed. A row with a single pretext seed falls back to its
fine-tune seeds and is marked: that spread leaves out the variation between pretext runs.
A setting is "above Scratch" when its mean exceeds Scratch's by at least two standard errors of
the difference of means, sqrt(se_a^2 + se_b^2).
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
# Fine-tune scores (per run) and frozen-feature scores (per checkpoint, or per Scratch seed's
# random weights) that the table shows, and the ones each setting is compared with Scratch on.
FROZEN_COLUMNS = ("retrieval_top1", "retrieval_top5", "probe_clip_accuracy")
COMPARED = ("clip_accuracy", "video_accuracy", "retrieval_top1", "probe_clip_accuracy", "shuffled_drop")
NAMES = {"clip_accuracy": "clip accuracy", "video_accuracy": "video accuracy",
         "retrieval_top1": "retrieval top-1", "probe_clip_accuracy": "linear-probe clip accuracy",
         "shuffled_drop": "shuffled-frames drop"}


def stats(values, units=None) -> dict | None:
    """Mean ± standard error over units (module docstring). `units[i]` names the unit of
    values[i]; without units every value is its own. None values are left out; None for none.
    `values`: the unit means (what the spread is over), `all`: every value,
    `within_one_unit`: the spread is over the values of a single unit."""
    values = list(values)
    units = list(range(len(values))) if units is None else list(units)
    pairs = [(u, float(v)) for u, v in zip(units, values) if v is not None]
    if not pairs:
        return None
    by_unit: dict = {}
    for u, v in pairs:
        by_unit.setdefault(u, []).append(v)
    within = len(by_unit) == 1 and len(pairs) > 1
    points = [v for _, v in pairs] if within else [sum(vs) / len(vs) for vs in by_unit.values()]
    n = len(points)
    mean = sum(points) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in points) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "se": None if std is None else std / math.sqrt(n), "n": n,
            "units": len(by_unit), "runs": len(pairs), "values": points, "all": [v for _, v in pairs],
            "within_one_unit": within}


def fmt(s: dict | None, scale: float = 100.0, digits: int = 1) -> str:
    """'mean ± standard error' in percent (or 'mean' for one value, '–' for none)."""
    if s is None:
        return "–"
    if s["se"] is None:
        return f"{scale * s['mean']:.{digits}f}"
    return f"{scale * s['mean']:.{digits}f} ± {scale * s['se']:.{digits}f}"


def compare(a: dict | None, b: dict | None) -> dict | None:
    """a - b with the standard error of the difference of means; `above` when a exceeds b by at
    least 2 standard errors (`below` the other way), `noise` when neither, `resolution` the gap that would
    be 2 standard errors, and `n_needed`: units per setting at which this gap, with these
    spreads, would be 2 standard errors (2 sqrt((sa^2 + sb^2) / n) = |diff|)."""
    if a is None or b is None or a["se"] is None or b["se"] is None:
        return None
    diff = a["mean"] - b["mean"]
    if abs(diff) < 1e-12:   # equal means that float sums made unequal
        diff = 0.0
    se = math.sqrt(a["se"] ** 2 + b["se"] ** 2)
    var = a["std"] ** 2 + b["std"] ** 2
    n_needed = math.ceil(8 * var / diff ** 2) if diff != 0 else None
    above, below = diff > 0 and diff >= 2 * se, diff < 0 and -diff >= 2 * se
    return {"diff": diff, "se": se, "resolution": 2 * se, "above": above, "below": below,
            "noise": not (above or below), "n_needed": n_needed}


def _drop(r: dict) -> float | None:
    if r.get("shuffled_clip_accuracy") is None or r.get("clip_accuracy") is None:
        return None
    return r["clip_accuracy"] - r["shuffled_clip_accuracy"]


def setting_row(finetunes: list, pretexts: list = (), *, unit_of, unit: str) -> dict:
    """One row's numbers. `finetunes`: result dicts with clip_accuracy, video_accuracy and, where
    measured, shuffled_clip_accuracy and train_accuracy; `unit_of(r)` names each one's unit.
    `pretexts`: result dicts with pretext_accuracy (one unit each). Frozen columns come from the
    runs that carry `frozen` scores (pretext checkpoints, or Scratch's random weights)."""
    units = [unit_of(r) for r in finetunes]
    row = {"unit": unit, "pretext_runs": len(pretexts), "finetune_runs": len(finetunes),
           "pretext_accuracy": stats([r.get("pretext_accuracy") for r in pretexts]),
           "pretext_curve": _mean_curve([r.get("heldout_curve") or r.get("curve") for r in pretexts])}
    for key in ("clip_accuracy", "video_accuracy", "shuffled_clip_accuracy", "train_accuracy"):
        row[key] = stats([r.get(key) for r in finetunes], units)
    row["shuffled_drop"] = stats([_drop(r) for r in finetunes], units)
    carriers = [(("pretext", i), r) for i, r in enumerate(pretexts)] + list(zip(units, finetunes))
    carriers = [(u, r) for u, r in carriers if r.get("frozen")]
    for key in FROZEN_COLUMNS:
        row[key] = stats([r["frozen"].get(key) for _, r in carriers], [u for u, _ in carriers])
    return row


def vs_reference(rows: dict, reference: str) -> None:
    """Compare every other row with rows[reference] on COMPARED (row["vs"]), in place."""
    for name, row in rows.items():
        if name != reference and reference in rows:
            row["vs"] = {k: compare(row[k], rows[reference][k]) for k in COMPARED}


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
    curves = [c for c in curves if c]
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
        if name == "scratch":
            settings[name] = setting_row(finetune.get(name, []), unit_of=lambda r: r["seed"],
                                         unit="fine-tune seed")
        else:
            settings[name] = setting_row(finetune.get(name, []), pretext.get(name, []),
                                         unit_of=lambda r: r["pretext_seed"], unit="pretext seed")
            settings[name]["planned_pretext_seeds"] = plan.pretext_seeds_of(name)
    vs_reference(settings, "scratch")
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
                              "pretext_curve": _mean_curve([r.get("heldout_curve") or r.get("curve")
                                                            for r in runs])}
    ft_chance = next((r["chance"] for r in results if r["kind"] == "finetune"), None)
    return {
        "title": "fastssl replicate: the paper's Table 2 in miniature (synthetic videos)",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": command_line, "machine": _machine(load_start),
        "wall_seconds": round(wall_seconds, 1), "sizes": plan.sizes.to_dict(),
        "pretext_seeds": plan.pretext_seeds, "pb_pretext_seeds": plan.pb_pretext_seeds,
        "seeds": plan.seeds, "crf_control": crf_control,
        "finetune_chance": ft_chance, "pretext_chance": 1 / 6, "reference": "scratch",
        "settings": settings, "controls": controls, "paper": PAPER, "runs": results,
    }


def _paper_cell(key: str) -> str:
    p = PAPER.get(key)
    if p is None:
        return "–"
    return " / ".join("–" if p[k] is None else f"{p[k]:.2f}" for k in ("pretext", "clip", "video"))


def _n_cell(row: dict) -> str:
    """How many units the row's spread is over: 'P x K' (pretext seeds x fine-tunes each) or the
    number of fine-tune seeds; † when the spread is within one pretext checkpoint."""
    s = row["clip_accuracy"]
    if s is None:
        return str(row["pretext_runs"]) if row["pretext_runs"] else "–"
    if row["unit"] == "pretext seed":
        per = s["runs"] / s["units"]
        cell = f"{s['units']} × {per:g}" if per == int(per) else f"{s['units']} ({s['runs']} runs)"
        return cell + (" †" if s["within_one_unit"] else "")
    return str(s["units"])


TABLE_HEAD = ("| Setting | n | Pretext acc. (%) | Clip acc. (%) | Video acc. (%) | Clip acc., frames "
              "shuffled (%) | Drop (pts) | Fine-tune train acc. (%) | Frozen: retrieval top-1 (%) | "
              "top-5 (%) | linear probe, clip (%) |")


def rows_table(rows: dict, labels: dict, *, paper: bool = False) -> list[str]:
    """The Markdown rows of `rows` (name -> setting_row), labelled `labels[name]`; with `paper`,
    a last column of the paper's pretext / clip / video figures and an Inflated row."""
    lines = [TABLE_HEAD + (" Paper: pretext / clip / video |" if paper else ""),
             "|---" * (12 if paper else 11) + "|"]
    for name, r in rows.items():
        end = f" {_paper_cell(name)} |" if paper else ""
        if r is None or (not r["finetune_runs"] and not r["pretext_runs"]):
            lines.append(f"| {labels[name]} | – |" + " not run |" * 4 + " – |" * 5 + end)
            continue
        lines.append(f"| {labels[name]} | {_n_cell(r)} | {fmt(r['pretext_accuracy'])} | "
                     f"{fmt(r['clip_accuracy'])} | {fmt(r['video_accuracy'])} | {fmt(r['shuffled_clip_accuracy'])} | "
                     f"{fmt(r['shuffled_drop'])} | {fmt(r['train_accuracy'])} | "
                     + " | ".join(fmt(r[k]) for k in FROZEN_COLUMNS) + f" |{end}")
    return lines


def _gap(c: dict, what: str) -> str:
    verdict = ("**above by >= 2 s.e.**" if c["above"] else "**below by >= 2 s.e.**" if c["below"]
               else "inside the noise")
    return (f"{what} {100 * c['diff']:+.1f} pts (s.e. {100 * c['se']:.1f}; a gap of "
            f"{100 * c['resolution']:.1f} is 2 s.e. here): {verdict}")


def reading(rows: dict, labels: dict, reference: str) -> list[str]:
    """The Reading: the resolution the runs have, and per row whether it is above the reference
    by >= 2 standard errors in clip accuracy and in retrieval top-1; then the shuffled drop."""
    ref = labels.get(reference, reference)
    if reference not in rows:
        return [f"- No {ref} row: nothing to compare with."]
    lines = []
    res = [(labels[n], r["vs"]["clip_accuracy"]) for n, r in rows.items()
           if n != reference and r and r.get("vs") and r["vs"]["clip_accuracy"]]
    if res:
        lines.append("- Resolution (2 standard errors of the difference to " + ref + ", clip accuracy): "
                     + "; ".join(f"{lab} {100 * c['resolution']:.1f} pts" for lab, c in res)
                     + ". A smaller gap cannot be told from seed noise with these runs.")
    for name, r in rows.items():
        if name == reference or not r or (not r["finetune_runs"] and r["retrieval_top1"] is None):
            continue
        label = labels[name]
        parts, compared = [], False
        for k in ("clip_accuracy", "retrieval_top1"):
            c = (r.get("vs") or {}).get(k)
            if c is not None:
                parts.append(_gap(c, NAMES[k]))
                compared = True
            elif r[k] is not None and rows[reference][k] is not None:
                parts.append(f"{NAMES[k]} {100 * r[k]['mean']:.1f} vs {100 * rows[reference][k]['mean']:.1f} "
                             "(too few units for a standard error)")
        if not compared:
            lines.append(f"- {label} vs {ref}: not enough runs to compare (need >= 2 units per row)"
                         + (f": {'; '.join(parts)}." if parts else "."))
            continue
        c = r["vs"]["clip_accuracy"]
        more = (f" With these spreads about {c['n_needed']} {r['unit']}s per setting would make its "
                f"clip-accuracy gap 2 s.e." if c and c["noise"] and c["n_needed"] else "")
        one = (f" († one {r['unit']}: its spread is over fine-tune seeds of one checkpoint and leaves "
               f"out the variation between pretext runs.)"
               if r["clip_accuracy"] and r["clip_accuracy"]["within_one_unit"] else "")
        lines.append(f"- {label} vs {ref}: " + "; ".join(parts) + "." + more + one)
    lines += _drop_reading(rows, labels, reference)
    return lines


def _drop_reading(rows: dict, labels: dict, reference: str) -> list[str]:
    have = {n: r for n, r in rows.items() if r and r["shuffled_drop"] is not None}
    if not have:
        return []
    said = "; ".join(f"{labels[n]} {fmt(r['shuffled_drop'])}" for n, r in have.items())
    order = [labels[n] for n, r in have.items() if n != reference and r.get("vs")
             and r["vs"]["shuffled_drop"] and r["vs"]["shuffled_drop"]["above"]]
    verdict = (f"{', '.join(order)} rel{'ies' if len(order) == 1 else 'y'} on frame order more than "
               f"{labels.get(reference, reference)} (drop larger by >= 2 s.e.)" if order else
               f"no setting's drop exceeds {labels.get(reference, reference)}'s by 2 standard errors")
    return [f"- Frames shuffled (drop in clip accuracy, pts): {said}: {verdict}. Shuffling keeps every "
            "frame of a clip (where the object is, its looks) and removes only their order, so a "
            "drop near 0 means the classifier tells the motions apart by which frames are present, "
            "and a large one that it reads their order."]


def table(summary: dict) -> str:
    """The Markdown report (table.md)."""
    s, m = summary["sizes"], summary["machine"]
    P, K, Ppb = summary["pretext_seeds"], summary["seeds"], summary.get("pb_pretext_seeds")
    rows = summary["settings"]
    load = lambda v: "n/a" if not v else " ".join(f"{x:.2f}" for x in v)  # noqa: E731
    pb = "" if Ppb is None or Ppb >= P else f", PB and PB-arrow {Ppb} (fewer: cost; marked †)"
    lines = [f"# {summary['title']}", "",
             f"- Command: `{summary['command']}`",
             f"- Machine: {m['nproc']} cores ({m['cpu']}), torch {m['torch']}; load average (1/5/15 min) "
             f"at start {load(m['load_start'])}, at end {load(m['load_end'])}",
             f"- Date: {summary['date']}; wall time {summary['wall_seconds'] / 60:.1f} min"
             + ("" if summary.get("finished_runs") is None else
                f" (sum of the run times; {summary['finished_runs']} of {summary['planned_runs']} planned "
                f"runs finished{'' if summary['finished_runs'] == summary['planned_runs'] else ': partial'})"),
             f"- Seeds: P={P} pretext seeds for RP and SS{pb}, x K={K} fine-tune seeds per pretext "
             f"checkpoint; Scratch: P x K = {P * K} fine-tune seeds. Mean ± standard error over units: "
             "the pretext seed for a pretrained row (its K fine-tunes averaged first), the fine-tune "
             "seed for Scratch; n = units (x fine-tunes each).",
             f"- Budgets (equal across settings, controls included): pretext {s['pretext_steps']} steps, "
             f"fine-tune {s['finetune_steps']} steps; preset `{s['preset']}` (batch "
             f"{s['batch_size'] or PRESETS[s['preset']]['batch_size']}); videos {s['size'][0]}x{s['size'][1]}, "
             f"{s['frames']} frames.", ""]
    shown = {n: rows.get(n) for n in ("scratch", "inflated", "rp", "ss", "pb", "pb-arrow")}
    lines += rows_table(shown, LABELS, paper=True)
    ch = summary.get("finetune_chance")
    lines += ["",
              f"Chance: pretext {100 / 6:.1f}% (N=6 clips), fine-tune {100 * ch:.1f}% "
              f"({round(1 / ch)} classes)." if ch else f"Chance: pretext {100 / 6:.1f}%.",
              "\\* Beyond the paper: PB pretrained on dissipative motions only (the paper's \"removing "
              "ambiguity of PB\" future work). Pretext acc. is on held-out questions from the pretext "
              "set's own test videos (the arrow set's, for this row). Drop = clip accuracy minus clip "
              "accuracy with each test clip's frames shuffled (seeded): how much the classifier "
              "relies on frame order. Frozen: conv1..pool3 features, pooled and L2-normalised, of each "
              "pretext checkpoint (Scratch: random weights, one draw per Scratch seed), no fine-tuning: "
              "test clips of the labelled set retrieve training clips by cosine similarity (top-k: a "
              "match of the class among the k nearest), and a fixed logistic-regression probe "
              "(fastssl.train.frozen).", "",
              "## Reading", ""]
    lines += reading(rows, {**LABELS, **SHORT}, "scratch")
    if summary["controls"]:
        lines += ["", "## Shortcut control: pretext on static scenes (no motion at all)", "",
                  "| Mode | Encoding | Pretext acc. (%) | Questions | At chance (within 3 s.e.)? |",
                  "|---|---|---|---|---|"]
        for name, c in sorted(summary["controls"].items(),
                              key=lambda kv: CONTROL_ORDER.index(kv[0]) if kv[0] in CONTROL_ORDER else 99):
            enc = ("crf (synth's default)" if c["dataset"] == "static-crf"
                   else "cqp (constant quantiser, replicate's sets)")
            at = "–" if c["at_chance"] is None else ("yes" if c["at_chance"] else "**no**")
            acc = "–" if c["pretext_accuracy"] is None else f"{100 * c['pretext_accuracy']['mean']:.1f}"
            se = "" if c["se"] is None else f" ± {100 * c['se']:.1f}"
            lines.append(f"| {LABELS.get(name, name)} | {enc} | {acc}{se} | {c['questions']} | {at} |")
        lines += ["", "± here: the binomial standard error at chance for that many questions."]
    drift = summary.get("static_frame_drift") or {}
    if drift:
        lines += ["", "Decoded static videos, mean |frame t - frame 0| in 0-255 levels (frames 1-7 / "
                  "frames 8+ / largest): " + "; ".join(
                      f"{'crf' if n == 'static-crf' else 'cqp'} {d['first_gop']:.3f} / {d['later']:.3f} / "
                      f"{d['max']:.3f}" for n, d in sorted(drift.items())) + ". With crf the first GOP "
                  "is coded at another quality than the rest, so pixels tell early frames from late "
                  "ones without any motion; cqp removes that step (what is left repeats every GOP)."]
    lines += ["", "Plots: `pretext_curves.png` (held-out pretext accuracy against steps per mode, mean "
              "over pretext seeds, scored during training), `finetune_accuracy.png` (clip accuracy per "
              "setting, every run; mean ± s.e.). Numbers: `results.json`.", ""]
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
            ax.plot(xs, [100 * y for y in ys], marker=".", label=SHORT.get(name, LABELS[name]))
    for name, c in sorted(summary["controls"].items()):
        if c["pretext_curve"]:
            xs, ys = zip(*c["pretext_curve"])
            enc = "crf" if c["dataset"] == "static-crf" else "cqp"
            ax.plot(xs, [100 * y for y in ys], ls="--", lw=1, label=f"static ({enc}), {LABELS[name]}")
    ax.axhline(100 / 6, color="grey", lw=0.8, ls=":", label="chance")
    ax.set(xlabel="pretext step", ylabel="held-out pretext accuracy (%)", ylim=(0, 100),
           title="Held-out pretext accuracy (mean over pretext seeds)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    paths.append(str(out / "pretext_curves.png"))
    fig.savefig(paths[-1], dpi=PLOT_DPI)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    names = [n for n in summary["settings"] if summary["settings"][n]["clip_accuracy"]]
    for i, name in enumerate(names):
        r = summary["settings"][name]
        vals = [100 * v for v in r["clip_accuracy"]["all"]]
        ax.scatter([i - 0.1] * len(vals), vals, color="C0", s=18, label="clip acc." if i == 0 else None)
        if r["shuffled_clip_accuracy"]:
            shuf = [100 * v for v in r["shuffled_clip_accuracy"]["all"]]
            ax.scatter([i + 0.1] * len(shuf), shuf, facecolors="none", edgecolors="C3", s=18,
                       label="frames shuffled" if i == 0 else None)
        ax.errorbar(i - 0.1, 100 * r["clip_accuracy"]["mean"], yerr=100 * (r["clip_accuracy"]["se"] or 0),
                    fmt="_", color="k", capsize=4, ms=14)
    if summary.get("finetune_chance"):
        ax.axhline(100 * summary["finetune_chance"], color="grey", lw=0.8, ls=":", label="chance")
    ax.set_xticks(range(len(names)), [LABELS[n].replace(", arrow-of-time set *", "\n(arrow set)")
                                      for n in names])
    ax.set(ylabel="test clip accuracy (%)", title="Fine-tune accuracy per setting (every run; mean ± s.e.)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(str(out / "finetune_accuracy.png"))
    fig.savefig(paths[-1], dpi=PLOT_DPI)
    plt.close(fig)
    return paths


def write(out: str | os.PathLike, summary: dict, *, text: str | None = None, plots: bool = True) -> str:
    """table.md (`text`, or replicate's table of summary), results.json and (with `plots`) the
    plots under out; returns the table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = table(summary) if text is None else text
    (out / "table.md").write_text(text)
    (out / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    if plots:
        plot(summary, out)
    return text
