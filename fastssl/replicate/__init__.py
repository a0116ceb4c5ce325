"""`fastssl replicate`: the paper's Table 2 in miniature, on synthetic videos, in one command.

    datasets.py   the experiment's datasets: a small labelled set (class = motion), an unlabelled
                  pretext set, an arrow-of-time pretext set (PB made learnable), static controls
    plan.py       sizes (default / quick / tiny), settings and the list of runs (P x K seeds)
    runner.py     runs them in-process, skipping finished runs and resuming an interrupted one
    report.py     the Markdown table beside the paper's figures, results.json, PNG plots;
                  its rows and Reading (mean ± standard error per unit) are shared with compare
    compare.py    `fastssl compare RUN_DIR...`: the same table for your own evaluations
    paper.py      the paper's numbers (Suzuki et al., Table 2, UCF101 split 1)

Everything goes under one folder (--out): data/, runs/<run>/, and the outputs
(table.md, results.json, pretext_curves.png, finetune_accuracy.png).
"""
from fastssl.replicate.plan import SIZES, Plan, Run, Sizes, make_plan
from fastssl.replicate.runner import replicate

__all__ = ["SIZES", "Plan", "Run", "Sizes", "make_plan", "replicate"]
