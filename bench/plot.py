"""Plot a `fastssl bench` JSON: throughput per component (median, bars from p25 to p75).

    python bench/plot.py runs/bench.json bench/throughput.png

Left: questions/s of the loaders, the baseline, model-only and end-to-end pretext training (one
question = N clips). Right: the clip-builder op against the device's copy bandwidth (GB/s).
"""
from __future__ import annotations

import io
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fastssl.files import atomic_write  # noqa: E402

QUESTIONS = [  # component, label, which summary holds questions/s
    ("loader.pyav", "fastssl PyAV loader", "metric"),
    ("loader.dali", "fastssl DALI loader", "metric"),
    ("loader.baseline", "baseline DataLoader", "metric"),
    ("model.pretext", "model-only (ceiling)", "questions_per_s"),
    ("e2e.pretrain", "end-to-end pretrain", "questions_per_s"),
]
OPS = [("op.copy", "copy bandwidth"), ("op.triton", "clip builder, Triton"), ("op.reference", "clip builder, torch")]


def _bars(ax, rows, unit, colors):
    rows = [r for r in rows if r[1] is not None]
    if not rows:  # none of these components ran
        ax.set_axis_off()
        return
    labels = [r[0] for r in rows]
    med = [r[1]["median"] for r in rows]
    lo = [r[1]["median"] - r[1]["p25"] for r in rows]
    hi = [r[1]["p75"] - r[1]["median"] for r in rows]
    y = range(len(rows))
    ax.barh(y, med, xerr=[lo, hi], color=[colors.get(lab, "#888888") for lab in labels], capsize=3)
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    ax.set_xlabel(unit)
    for i, (m, h) in enumerate(zip(med, hi)):
        ax.text(m + h, i, f"  {m:.3g}", va="center", fontsize=8)
    ax.set_xlim(0, max(m + h for m, h in zip(med, hi)) * 1.18)
    ax.grid(axis="x", alpha=0.3)


def plot(doc: dict, out: str) -> None:
    comps = doc["components"]

    def stats(name, key="metric"):
        c = comps.get(name) or {}
        s = c.get(key) if c.get("status") == "ok" else None
        return s if s and s.get("median") is not None else None

    q_rows = [(label, stats(name, key)) for name, label, key in QUESTIONS]
    o_rows = [(label, stats(name)) for name, label in OPS]
    colors = {"fastssl PyAV loader": "#4c72b0", "fastssl DALI loader": "#4c72b0", "clip builder, Triton": "#4c72b0",
              "clip builder, torch": "#4c72b0", "baseline DataLoader": "#c44e52", "model-only (ceiling)": "#8172b2",
              "end-to-end pretrain": "#55a868", "copy bandwidth": "#8c8c8c"}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1.4, 1]})
    _bars(axes[0], q_rows, "questions/s (median, bars p25-p75)", colors)
    _bars(axes[1], o_rows, "GB/s (read + written)", colors)
    m = doc["machine"]
    s = doc["settings"]
    where = m["gpu"]["name"] if m.get("gpu") else f"{m['cpu']} x{m['cpu_cores_usable']}"
    r = doc.get("ratios") or {}
    title = (f"fastssl bench {doc['date'][:10]}: preset {s['preset']} on {s['device']} ({where}), "
             f"{s['workers']} workers")
    if r.get("loader_vs_baseline"):
        title += f"; loader/baseline {r['loader_vs_baseline']:.2f}x"
    if r.get("e2e_vs_model"):
        title += f", e2e/model {r['e2e_vs_model']:.2f}x"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=90)
    atomic_write(out, png.getvalue())


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        plot(json.load(f), sys.argv[2])
    print(f"wrote {sys.argv[2]}")
