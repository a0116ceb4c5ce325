"""Sizes, settings and the list of runs of `fastssl replicate`.

Settings (rows of the table):
    scratch    fine-tune from random weights
    rp, ss, pb pretext on the unlabelled pretext set, then fine-tune from its conv layers
    pb-arrow   PB on the arrow-of-time set (dissipative motions only), then fine-tune
    control-*  pretext only, on static scenes (no motion): must stay at chance

Every pretext run has the same step budget (the static controls included), and so does every
fine-tune run. RP and SS get P pretext seeds, PB and PB-arrow min(P, P_pb) (their rows say
so), each pretext checkpoint K fine-tune seeds, and Scratch P x K fine-tune seeds.

The unit of a row's spread (report.py) is the pretext seed for a pretrained setting (its K
fine-tunes are averaged first: they share one checkpoint, so they are not independent samples
of the setting) and the fine-tune seed for Scratch.
"""
from __future__ import annotations

import dataclasses
import math
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
    # 18 per class is where Scratch learns the classes (4 only memorised its videos: issue 16)
    train_per_class: int = 18        # labelled training videos per class
    test_per_class: int = 10         # labelled test videos per class
    pretext_per_motion: int = 15     # unlabelled pretext videos per motion (2/3 train, 1/3 held out)
    arrow_per_motion: int = 48       # per dissipative motion (3 motions: about as many as pretext)
    control_videos: int = 120        # static videos (2 folders of 60; every third is held out)
    pretext_steps: int = 1500        # every pretext run (300 stopped RP and SS inside the plateau)
    finetune_steps: int = 600        # every fine-tune run
    batch_size: int | None = None    # None = the preset's (tiny: 16 questions / clips)
    eval_questions: int | None = None  # held-out pretext questions per test video (None = preset's)
    # A static control is scored on at least this many held-out questions: its s.e. at chance is
    # then sqrt(1/6 * 5/6 / 1000) = 1.2 points (96 questions gave +-11 points at 3 s.e.).
    control_questions: int = 1000

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The sizes come from the measurements of issue 16 (held-out pretext accuracy at 1500 steps,
# Scratch vs RP/SS on 18 training videos per class at 600 fine-tune steps); time: DEFAULT_MINUTES.
SIZES = {
    "default": Sizes(),
    "quick": Sizes(pretext_per_motion=9, arrow_per_motion=30, control_videos=36, test_per_class=5,
                   pretext_steps=200, finetune_steps=150),
    # the slow test's size: seconds per run, checks the plumbing, not the science
    "tiny": Sizes(size=(64, 48), frames=24, classes=3, train_per_class=2, test_per_class=1,
                  pretext_per_motion=3, arrow_per_motion=3, control_videos=4, pretext_steps=3,
                  finetune_steps=3, batch_size=2, eval_questions=1, control_questions=4),
}

# The default plan: P pretext seeds for RP and SS, P_PB for PB and PB-arrow, K fine-tunes each.
DEFAULT_PRETEXT_SEEDS, DEFAULT_PB_PRETEXT_SEEDS, DEFAULT_SEEDS = 3, 1, 2
# Its time, estimated from what `make demo` measured on an idle 2-core CPU (2026-11-29; see
# bench/RESULTS.md "make demo on the powered plan"): an RP pretext run of 1000 steps took 352 s
# all in (held-out monitor, final questions, frozen scoring), a 400-step fine-tune with its two
# evaluations 44-49 s. Scaled to this plan's budgets, per run:
#   pretext   1500 steps: ~520 s;  control 1500 steps: ~500 s;  fine-tune 600 steps: ~70 s
# runs: 8 pretext (RP 3, SS 3, PB 1, PB-arrow 1), 3 controls, 22 fine-tunes, ~60 s of data:
#   8 x 520 + 3 x 500 + 22 x 70 + 60 = 4160 + 1500 + 1540 + 60 = 7260 s = 121 min
# (over the 90 minutes the plan should take: what to cut is open, bench/RESULTS.md says what)
DEFAULT_MINUTES = 121


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
    pb_pretext_seeds: int | None = None   # None: as many as pretext_seeds

    def pretext_seeds_of(self, setting: str) -> int:
        """How many pretext seeds a pretext setting gets in this plan."""
        return pretext_seeds_of(setting, self.pretext_seeds, self.pb_pretext_seeds)

    def pretext_runs(self):
        return [r for r in self.runs if r.kind == "pretext"]

    def finetune_runs(self):
        return [r for r in self.runs if r.kind == "finetune"]


PRETEXT_SETTINGS = {"rp": ("rp", "pretext"), "ss": ("ss", "pretext"), "pb": ("pb", "pretext"),
                    "pb-arrow": ("pb", "arrow")}
CONTROL_SETTINGS = {f"control-{m}": (m, "static") for m in CONTROL_MODES}
SETTINGS = ("scratch", *PRETEXT_SETTINGS, *CONTROL_SETTINGS)
FINETUNE_SETTINGS = ("scratch", *PRETEXT_SETTINGS)


PB_SETTINGS = ("pb", "pb-arrow")


def pretext_seeds_of(setting: str, pretext_seeds: int, pb_pretext_seeds: int | None) -> int:
    if setting in PB_SETTINGS and pb_pretext_seeds is not None:
        return min(pretext_seeds, pb_pretext_seeds)
    return pretext_seeds


def control_eval_questions(sizes: Sizes) -> int:
    """Held-out questions per test video that give a static control >= control_questions in
    all: the static set has 2 folders, every third video of each held out (synth's split)."""
    per_folder = max(2, sizes.control_videos // 2)
    return math.ceil(sizes.control_questions / (2 * math.ceil(per_folder / 3)))


def make_plan(sizes: Sizes, pretext_seeds: int, seeds: int, *, pb_pretext_seeds: int | None = None,
              controls=CONTROL_MODES, only=None) -> Plan:
    """Runs in the order they are run, so that a run stopped early still reports every
    setting: for pretext seed 0, its pretext runs then their fine-tunes (K seeds each) and K
    Scratch seeds; then the static controls (one seed each: they must sit at chance); then
    the same for pretext seeds 1..P-1 (PB and PB-arrow stop after `pb_pretext_seeds`).
    Scratch gets P x K seeds in all. `controls`: the modes run on static scenes (() for none).
    `only`: keep these fine-tune settings (and the pretext runs they need)."""
    if pretext_seeds < 1 or seeds < 1 or (pb_pretext_seeds is not None and pb_pretext_seeds < 1):
        raise ValueError("pretext_seeds, pb_pretext_seeds and seeds must be >= 1")
    runs = []
    for p in range(pretext_seeds):
        mine = [s for s in PRETEXT_SETTINGS if p < pretext_seeds_of(s, pretext_seeds, pb_pretext_seeds)]
        for setting in mine:
            mode, dataset = PRETEXT_SETTINGS[setting]
            runs.append(Run(f"{setting}-p{p}", setting, "pretext", seed=p, mode=mode, dataset=dataset))
        for k in range(seeds):
            j = p * seeds + k
            runs.append(Run(f"scratch-f{j}", "scratch", "finetune", seed=j))
            for setting in mine:
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
    return Plan(sizes=sizes, pretext_seeds=pretext_seeds, seeds=seeds, runs=tuple(runs),
                pb_pretext_seeds=pb_pretext_seeds)
