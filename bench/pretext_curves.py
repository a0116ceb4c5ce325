"""Held-out pretext accuracy against steps, for choosing budgets and what shortens the plateau.

    python bench/pretext_curves.py OUT [--steps 1500] [--only rp,ss,...]

Builds replicate's pretext and arrow-of-time sets (the default sizes) under OUT/data, runs one
pretext training per variant (tiny preset, seed 0) with the held-out monitor every 100 steps
(`heldout/question_accuracy`), and writes OUT/curves.json and OUT/curves.png. A variant already
finished in OUT is read, not run again.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# name -> (dataset, pretrain options beyond the tiny preset's)
VARIANTS = {
    "rp": ("pretext", dict(mode="rp")),
    "ss": ("pretext", dict(mode="ss")),
    "pb": ("pretext", dict(mode="pb")),
    "pb-arrow": ("arrow", dict(mode="pb")),
    "rp-lr3e-4-warm10": ("pretext", dict(mode="rp", lr=3e-4, warmup=0.1)),
    "rp-warm10": ("pretext", dict(mode="rp", warmup=0.1)),
    "rp-sgd-lr1e-2": ("pretext", dict(mode="rp", optimizer="sgd", lr=1e-2)),
    "rp-batch32": ("pretext", dict(mode="rp", batch_size=32)),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--only", default=",".join(VARIANTS))
    args = parser.parse_args()
    from fastssl.replicate import datasets
    from fastssl.replicate.plan import SIZES
    from fastssl.train.run import run
    from fastssl.train.run_setup import setup_training
    from fastssl.train.runlog import read_metrics
    from fastssl.train.tasks import TASKS

    out = Path(args.out)
    folders = datasets.build(out / "data", SIZES["default"], names=("pretext", "arrow"))
    results = json.loads((out / "curves.json").read_text()) if (out / "curves.json").is_file() else {}
    for name in args.only.split(","):
        dataset, options = VARIANTS[name]
        run_dir = out / "runs" / name
        if name in results and results[name]["steps"] == args.steps:
            continue
        t0, load = time.time(), os.getloadavg()[0]
        setup = setup_training("pretrain", data=folders[dataset], out=str(run_dir), preset="tiny", device="cpu",
                               steps=args.steps, seed=0, eval_every=100, log_every=50, force=True,
                               report=lambda _: None, **options)
        result = run(TASKS["pretrain"], setup, progress=False, report=lambda _: None)
        records = read_metrics(run_dir)
        results[name] = {
            "dataset": dataset, "options": options, "steps": args.steps,
            "heldout": [[r["step"], r["heldout/question_accuracy"]] for r in records if "heldout/question_accuracy" in r],
            "train": [[r["step"], r["pretext/accuracy"]] for r in records if "pretext/accuracy" in r],
            "final_heldout": result["pretext_accuracy"], "questions": result["questions"],
            "seconds": round(time.time() - t0), "load_start": round(load, 2), "load_end": round(os.getloadavg()[0], 2)}
        (out / "curves.json").write_text(json.dumps(results, indent=1) + "\n")
        print(f"{name}: held-out {result['pretext_accuracy']:.3f} after {args.steps} steps, "
              f"{results[name]['seconds']} s (load {load:.1f})", flush=True)
    plot(results, out / "curves.png")
    return 0


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, r in results.items():
        steps, acc = zip(*r["heldout"]) if r["heldout"] else ((), ())
        ax.plot(steps, [100 * a for a in acc], marker=".", label=f"{name} ({100 * r['final_heldout']:.1f}%)")
    ax.axhline(100 / 6, color="grey", linestyle=":", label="chance (N=6)")
    ax.set_xlabel("step (16 questions each; tiny preset)")
    ax.set_ylabel("held-out pretext accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
