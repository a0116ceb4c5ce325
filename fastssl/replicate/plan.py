"""Sizes, settings and the list of runs of `fastssl replicate`.

Settings (rows of the table):
    scratch    fine-tune from random weights
    rp, ss, pb pretext on the unlabelled pretext set, then fine-tune from its conv layers
    pb-arrow   PB on the arrow-of-time set (dissipative motions only), then fine-tune
    control-*  pretext only, on static scenes (no motion): must stay at chance

Every pretext run has the same step budget, and so does every fine-tune run. Each pretext
setting gets P pretext seeds, each pretext checkpoint K fine-tune seeds, and Scratch P x K
fine-tune seeds (so every row is a mean over the same number of runs).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

MAIN_MODES = ("rp", "ss", "pb")
CONTROL_MODES = ("rp", "ss", "pb")


@dataclass(frozen=True)
class Sizes:
    """Everything that sets the cost of a replicate run (see SIZES for the measured choices)."""
    preset: str = "tiny"
    size: tuple = (96, 72)           # video width x height (the tiny preset's resize, so no scaling)
    frames: int = 48                 # frames per video: 6 non-overlapping 8-frame test clips
    classes: int = 10                # labelled classes = the first 10 motions (chance 10%)
    train_per_class: int = 4         # labelled training videos per class (deliberately few)
    test_per_class: int = 8          # labelled test videos per class
    pretext_per_motion: int = 15     # unlabelled pretext videos per motion (2/3 train, 1/3 held out)
    arrow_per_motion: int = 48       # per dissipative motion (3 motions: about as many as pretext)
    control_videos: int = 72         # static videos (2 folders of 36)
    pretext_steps: int = 300         # every pretext run
    finetune_steps: int = 300        # every fine-tune run
    batch_size: int | None = None    # None = the preset's (tiny: 16 questions / clips)
    eval_questions: int | None = None  # held-out pretext questions per test video (None = preset's)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The sizes come from measured step rates and learning curves: bench/RESULTS.md, "Replicate sizes".
SIZES = {
    "default": Sizes(),
    "quick": Sizes(pretext_per_motion=9, arrow_per_motion=30, control_videos=36, test_per_class=5,
                   pretext_steps=200, finetune_steps=150),
    # the slow test's size: seconds per run, checks the plumbing, not the science
    "tiny": Sizes(size=(64, 48), frames=24, classes=3, train_per_class=2, test_per_class=1,
                  pretext_per_motion=3, arrow_per_motion=3, control_videos=4, pretext_steps=3,
                  finetune_steps=3, batch_size=2, eval_questions=1),
}


@dataclass(frozen=True)
class Run:
    """One training run. kind: "pretext" (mode on dataset) or "finetune" (init = a pretext
    run's key, or None for Scratch)."""
    key: str                  # folder name under runs/
    setting: str              # scratch | rp | ss | pb | pb-arrow | control-rp | ...
    kind: str                 # pretext | finetune
    seed: int
    mode: str | None = None   # pretext mode
    dataset: str = "labelled"  # which of datasets.SETS it trains on
    init: str | None = None   # finetune: the pretext run it starts from
    pretext_seed: int | None = None


@dataclass(frozen=True)
class Plan:
    sizes: Sizes
    pretext_seeds: int
    seeds: int
    runs: tuple

    def pretext_runs(self):
        return [r for r in self.runs if r.kind == "pretext"]

    def finetune_runs(self):
        return [r for r in self.runs if r.kind == "finetune"]


PRETEXT_SETTINGS = {"rp": ("rp", "pretext"), "ss": ("ss", "pretext"), "pb": ("pb", "pretext"),
                    "pb-arrow": ("pb", "arrow")}
CONTROL_SETTINGS = {f"control-{m}": (m, "static") for m in CONTROL_MODES}
SETTINGS = ("scratch", *PRETEXT_SETTINGS, *CONTROL_SETTINGS)
FINETUNE_SETTINGS = ("scratch", *PRETEXT_SETTINGS)


def make_plan(sizes: Sizes, pretext_seeds: int, seeds: int, *, controls=CONTROL_MODES,
              only=None) -> Plan:
    """Runs in the order they are run, so that a run stopped early still reports every
    setting: for pretext seed 0, its pretext runs then their fine-tunes (K seeds each) and K
    Scratch seeds; then the static controls (one seed each: they must sit at chance); then
    the same for pretext seeds 1..P-1. Scratch gets P x K seeds in all, so every row averages
    the same number of runs. `controls`: the modes run on static scenes (() for none).
    `only`: keep these fine-tune settings (and the pretext runs they need)."""
    if pretext_seeds < 1 or seeds < 1:
        raise ValueError("pretext_seeds and seeds must be >= 1")
    runs = []
    for p in range(pretext_seeds):
        for setting, (mode, dataset) in PRETEXT_SETTINGS.items():
            runs.append(Run(f"{setting}-p{p}", setting, "pretext", seed=p, mode=mode, dataset=dataset))
        for k in range(seeds):
            j = p * seeds + k
            runs.append(Run(f"scratch-f{j}", "scratch", "finetune", seed=j))
            for setting in PRETEXT_SETTINGS:
                runs.append(Run(f"{setting}-p{p}-f{k}", setting, "finetune", seed=k,
                                init=f"{setting}-p{p}", pretext_seed=p))
        if p == 0:
            for setting, (mode, dataset) in CONTROL_SETTINGS.items():
                if mode in controls:
                    runs.append(Run(f"{setting}-p0", setting, "pretext", seed=0, mode=mode,
                                    dataset=dataset))
    if only is not None:
        unknown = set(only) - set(FINETUNE_SETTINGS)
        if unknown:
            raise ValueError(f"unknown setting(s) {sorted(unknown)}; choose from {list(FINETUNE_SETTINGS)}")
        runs = [r for r in runs if r.setting in only or r.setting.startswith("control-")]
    return Plan(sizes=sizes, pretext_seeds=pretext_seeds, seeds=seeds, runs=tuple(runs))
