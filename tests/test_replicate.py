"""fastssl replicate and compare: the plan, the report's numbers, power accounting and table
(fast), compare's grouping and the CLIs' usage errors (fast), and the whole pipeline end to end
at a tiny size, with resume and compare on its real evaluations (slow)."""
import json
import math

import pytest
from click.testing import CliRunner

from fastssl.cli_replicate import compare as compare_cmd
from fastssl.cli_replicate import replicate as replicate_cmd
from fastssl.replicate import SIZES, make_plan
from fastssl.replicate import compare as rcompare
from fastssl.replicate import datasets as rdata
from fastssl.replicate import report
from fastssl.replicate.plan import DEFAULT_MINUTES, FINETUNE_SETTINGS, control_eval_questions


# ---- plan --------------------------------------------------------------------------------------

def test_plan_counts_and_order():
    plan = make_plan(SIZES["default"], 2, 3)
    pre, ft = plan.pretext_runs(), plan.finetune_runs()
    assert len(pre) == 4 * 2 + 3                      # 4 pretext settings x P + 3 controls
    assert len(ft) == 2 * 3 + 4 * 2 * 3               # Scratch P x K + 4 settings x P x K
    keys = [r.key for r in plan.runs]
    assert len(set(keys)) == len(keys)
    for r in ft:                                      # a fine-tune comes after its pretext run
        if r.init:
            assert keys.index(r.init) < keys.index(r.key)
    counts = {s: sum(r.setting == s for r in ft) for s in FINETUNE_SETTINGS}
    assert set(counts.values()) == {6}                # same n per row
    assert not make_plan(SIZES["default"], 1, 1, controls=()).runs[-1].setting.startswith("control")
    with pytest.raises(ValueError):
        make_plan(SIZES["default"], 0, 1)


def test_plan_gives_pb_fewer_pretext_seeds_and_scratch_p_times_k():
    plan = make_plan(SIZES["default"], 3, 2, pb_pretext_seeds=1)
    pre = [r for r in plan.pretext_runs() if not r.setting.startswith("control")]
    assert {s: sum(r.setting == s for r in pre) for s in ("rp", "ss", "pb", "pb-arrow")} == \
        {"rp": 3, "ss": 3, "pb": 1, "pb-arrow": 1}
    ft = plan.finetune_runs()
    assert sum(r.setting == "scratch" for r in ft) == 6 and sum(r.setting == "pb" for r in ft) == 2
    assert plan.pretext_seeds_of("pb-arrow") == 1 and plan.pretext_seeds_of("ss") == 3


def test_static_control_is_scored_on_1000_questions():
    s = SIZES["default"]
    test_videos = 2 * math.ceil(s.control_videos // 2 / 3)      # synth holds out every third video
    assert test_videos * control_eval_questions(s) >= 1000


def test_datasets_keep_the_arrow_set_free_of_time_reverses():
    assert "start_from_rest" not in rdata.ARROW_MOTIONS and "grow" not in rdata.ARROW_MOTIONS
    from fastssl.data.synth import MOTIONS
    assert all(not MOTIONS[m].time_symmetric for m in rdata.ARROW_MOTIONS)
    spec = rdata.specs(SIZES["default"], crf_control=True)
    assert spec["static"]["motions"] == ["static"] and "static" not in MOTIONS
    assert {s["rate_control"] for n, s in spec.items() if n != "static-crf"} == {"cqp"}
    assert spec["static-crf"]["rate_control"] == "crf"
    assert spec["labelled"]["seed"] != spec["pretext"]["seed"]   # pretext videos are other videos


# ---- report numbers and table -----------------------------------------------------------------

def test_stats_and_format():
    s = report.stats([0.2, 0.4])
    assert s["mean"] == pytest.approx(0.3) and s["std"] == pytest.approx(math.sqrt(0.02))
    assert s["se"] == pytest.approx(0.1)
    assert report.fmt(s) == "30.0 ± 10.0"                 # mean ± standard error
    assert report.fmt(report.stats([0.25])) == "25.0"
    assert report.fmt(None) == "–" and report.stats([None]) is None


def test_power_unit_is_the_pretext_seed():
    # 3 pretext seeds x 2 fine-tunes: the fine-tunes of one checkpoint are averaged first, so the
    # spread is over 3 unit means, not 6 runs
    values = [0.30, 0.32, 0.40, 0.42, 0.35, 0.37]
    units = [0, 0, 1, 1, 2, 2]
    s = report.stats(values, units)
    assert s["n"] == 3 and s["runs"] == 6 and not s["within_one_unit"]
    assert s["values"] == pytest.approx([0.31, 0.41, 0.36])
    assert s["se"] == pytest.approx(0.05 / math.sqrt(3))        # std of 0.31, 0.41, 0.36 is 0.05
    assert s["se"] > report.stats(values)["se"]                 # 6 "independent" runs would overstate power
    # one pretext checkpoint: the spread falls back to its fine-tunes, and says so
    one = report.stats([0.30, 0.34, 0.32], [0, 0, 0])
    assert one["n"] == 3 and one["within_one_unit"]


def test_compare_above_below_and_noise():
    a, b = report.stats([0.30, 0.34]), report.stats([0.28, 0.32])
    c = report.compare(a, b)
    assert c["diff"] == pytest.approx(0.02) and c["noise"] and not c["above"]
    assert c["se"] == pytest.approx(math.sqrt(a["se"] ** 2 + b["se"] ** 2))
    assert c["resolution"] == pytest.approx(2 * c["se"])
    assert c["n_needed"] == math.ceil(8 * (a["std"] ** 2 + b["std"] ** 2) / 0.02 ** 2)
    far = report.compare(report.stats([0.9, 0.91]), b)
    assert far["above"] and not far["noise"]
    assert report.compare(b, report.stats([0.9, 0.91]))["below"]
    assert report.compare(report.stats([0.3]), b) is None


def _fake_results(plan):
    """Result dicts shaped as runner.py writes them (the report's input), numbers chosen."""
    out = []
    for r in plan.runs:
        base = dict(key=r.key, setting=r.setting, kind=r.kind, seed=r.seed, mode=r.mode,
                    dataset=r.dataset, pretext_seed=r.pretext_seed)
        if r.kind == "pretext":
            control = r.setting.startswith("control")
            acc = 1 / 6 if control else 0.9
            frozen = None if control else dict(retrieval_top1=0.40 + 0.02 * r.seed, retrieval_top5=0.7,
                                               probe_clip_accuracy=0.5)
            out.append(dict(base, pretext_accuracy=acc, chance=1 / 6, questions=1000,
                            curve=[[10, 0.2], [20, acc]], heldout_curve=[[10, 0.17], [20, acc]],
                            frozen=frozen))
        else:
            clip = 0.3 + 0.01 * r.seed + (0.1 if r.setting == "rp" else 0)
            frozen = (dict(retrieval_top1=0.20 + 0.02 * r.seed, retrieval_top5=0.5, probe_clip_accuracy=0.3)
                      if r.setting == "scratch" else None)
            out.append(dict(base, clip_accuracy=clip, video_accuracy=clip + 0.05,
                            shuffled_clip_accuracy=clip - 0.1, shuffled_video_accuracy=clip,
                            chance=0.1, train_accuracy=1.0, frozen=frozen))
    return out


def test_table_has_the_papers_rows_and_figures(tmp_path):
    plan = make_plan(SIZES["quick"], 2, 2)
    summary = report.summarise(plan, _fake_results(plan), wall_seconds=61, command_line="fastssl replicate --x")
    text = report.write(tmp_path, summary)
    lines = text.split("## Shortcut control")[0].splitlines()
    row = {ln.split("|")[1].strip(): ln for ln in lines if ln.startswith("| ") and "---" not in ln}
    for name in ("Scratch", "Inflated", "RP", "SS", "PB", "PB, arrow-of-time set *"):
        assert name in row, name
    assert "not run" in row["Inflated"] and "55.12" in row["Inflated"]
    assert "99.21 / 44.96 / 49.20" in row["RP"] and "40.98" in row["Scratch"]
    assert "| 4 |" in row["Scratch"]                      # Scratch: P x K fine-tune seeds
    assert "| 2 × 2 |" in row["RP"]                       # 2 pretext seeds x 2 fine-tunes each
    assert "90.0 ± 0.0" in row["RP"]                      # pretext accuracy
    assert "10.0 ± 0.0" in row["SS"]                      # the shuffled-frames drop
    assert "`fastssl replicate --x`" in text
    assert "P=2" in text and "K=2" in text
    # RP: fine-tune seeds 0, 1 of each checkpoint -> 40.5 both units; Scratch seeds 0-3 -> 31.5
    assert "RP vs Scratch: clip accuracy +9.0 pts" in text
    assert "inside the noise" in text                     # SS vs Scratch: same numbers
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["settings"]["rp"]["clip_accuracy"]["n"] == 2          # units: pretext seeds
    assert data["settings"]["scratch"]["clip_accuracy"]["n"] == 4     # units: fine-tune seeds
    assert data["settings"]["rp"]["pretext_curve"] == [[10, 0.17], [20, 0.9]]   # the held-out curve
    assert data["controls"]["control-rp"]["at_chance"] is True
    assert data["controls"]["control-rp"]["questions"] == 1000
    for png in ("pretext_curves.png", "finetune_accuracy.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / png).stat().st_size < 200_000


def test_table_has_frozen_columns_and_states_its_resolution(tmp_path):
    plan = make_plan(SIZES["quick"], 2, 2, pb_pretext_seeds=1)
    summary = report.summarise(plan, _fake_results(plan), wall_seconds=61)
    text = report.table(summary)
    assert "Frozen: retrieval top-1 (%)" in text and "linear probe, clip (%)" in text
    main = text.split("## Shortcut control")[0].splitlines()
    row = {ln.split("|")[1].strip(): ln for ln in main if ln.startswith("| ")}
    assert "| 41.0 ± 1.0 | 70.0 ± 0.0 | 50.0 ± 0.0 |" in row["RP"]     # one value per pretext checkpoint
    assert "| 23.0 ± 1.3 | 50.0 ± 0.0 | 30.0 ± 0.0 |" in row["Scratch"]  # random weights per Scratch seed
    assert "| 1 × 2 † |" in row["PB"]                                  # fewer pretext seeds, marked
    reading = text.split("## Reading")[1].split("## Shortcut")[0]
    rp = summary["settings"]["rp"]["vs"]
    assert f"RP {100 * rp['clip_accuracy']['resolution']:.1f} pts" in reading.splitlines()[2]
    rp_line = next(ln for ln in reading.splitlines() if ln.startswith("- RP vs Scratch"))
    assert f"a gap of {100 * rp['clip_accuracy']['resolution']:.1f} is 2 s.e. here" in rp_line
    assert "clip accuracy +9.0 pts" in rp_line and "retrieval top-1 +18.0 pts" in rp_line
    assert rp_line.count("**above by >= 2 s.e.**") == 2
    assert "one pretext seed" in next(ln for ln in reading.splitlines() if ln.startswith("- PB vs"))
    assert "Frames shuffled" in reading


# ---- compare -------------------------------------------------------------------------------------

def _run(tmp, name, **config):
    """A training run folder as `fastssl pretrain/finetune` leaves it: config.json (+ scores)."""
    folder = tmp / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"command": "x", "data": str(tmp / "data"), **config}))
    return folder


def _eval(folder, sub, **result):
    """An evaluation folder as `fastssl evaluate --out` leaves it (eval.json, config.json)."""
    out = folder / sub
    out.mkdir()
    (out / "eval.json").write_text(json.dumps({"checkpoint": str(folder / "checkpoint.pt"), **result}))
    (out / "config.json").write_text((folder / "config.json").read_text())
    return out


def _clip(acc, shuffled=None):
    r = {"kind": "classifier", "clip_accuracy": acc, "video_accuracy": acc, "chance": 0.1}
    return r if shuffled is None else dict(r, clip_accuracy=shuffled, shuffled_frames_seed=0)


def test_compare_groups_by_setting_with_the_pretext_checkpoint_as_unit(tmp_path):
    dirs = []
    for p in range(2):
        pre = _run(tmp_path, f"rp-p{p}", mode="rp", data=str(tmp_path / "unlabelled"))
        (pre / "scores.json").write_text(json.dumps({"pretext_accuracy": 0.9 + 0.02 * p}))
        for k in range(2):
            ft = _run(tmp_path, f"rp-p{p}-f{k}", init=str(pre / "checkpoint.pt"), seed=k)
            dirs += [_eval(ft, "eval", **_clip(0.40 + 0.1 * p + 0.02 * k)),
                     _eval(ft, "eval-shuffled", **_clip(None, shuffled=0.30))]
    for k in range(3):
        dirs.append(_eval(_run(tmp_path, f"scratch-{k}", init=None, seed=k), "eval", **_clip(0.2 + 0.01 * k)))
    summary = rcompare.summarise(dirs)
    rows = summary["settings"]
    assert list(rows) == ["Scratch", "RP (unlabelled)"]       # Scratch first, then by pretext mode + data
    rp = rows["RP (unlabelled)"]
    assert rp["clip_accuracy"]["n"] == 2 and rp["clip_accuracy"]["runs"] == 4   # units: pretext checkpoints
    assert rp["clip_accuracy"]["values"] == pytest.approx([0.41, 0.51])
    assert rp["pretext_accuracy"]["values"] == pytest.approx([0.9, 0.92])       # each checkpoint's scores.json once
    assert rp["shuffled_drop"]["mean"] == pytest.approx(0.46 - 0.30)            # plain + shuffled merged
    assert rows["Scratch"]["clip_accuracy"]["n"] == 3 and rows["Scratch"]["unit"] == "fine-tune seed"
    text = rcompare.table(summary)
    assert "| RP (unlabelled) | 2 × 2 |" in text and "- RP (unlabelled) vs Scratch: clip accuracy +25.0 pts" in text
    # --label: one per folder, in order; the rows follow the labels
    labelled = rcompare.summarise(dirs[:2] + dirs[-3:], ["mine"] * 2 + ["base"] * 3, baseline="base")
    assert list(labelled["settings"]) == ["mine", "base"] and labelled["reference"] == "base"


def test_compare_usage_errors_name_the_folders(tmp_path):
    good = _eval(_run(tmp_path, "scratch", init=None), "eval", **_clip(0.2))
    empty = tmp_path / "empty"
    (empty / "eval").mkdir(parents=True)
    (empty / "eval" / "eval.json").write_text("{}")
    res = CliRunner().invoke(compare_cmd, [str(good), str(empty), str(tmp_path / "nope")])
    assert res.exit_code == 2
    assert "no eval.json in 2 of the 3 run folders" in res.output
    assert f"{empty}: no eval.json (these folders inside it have one: {empty / 'eval'})" in res.output
    assert str(tmp_path / "nope") in res.output and f"{good}:" not in res.output
    res = CliRunner().invoke(compare_cmd, [str(empty / "eval")])
    assert res.exit_code == 2 and "not an eval.json written by `fastssl evaluate`" in res.output
    res = CliRunner().invoke(compare_cmd, [str(good), "--label", "a", "--label", "b"])
    assert res.exit_code == 2 and "2 --label for 1 run folders" in res.output
    res = CliRunner().invoke(compare_cmd, [str(good), "--baseline", "RP"])
    assert res.exit_code == 2 and "no such row" in res.output
    res = CliRunner().invoke(compare_cmd, [str(good), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "table.md").read_text().startswith("# fastssl compare")


# ---- CLI usage errors --------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["--seeds", "0"], ["--pretext-seeds", "-1"], ["--pretext-steps", "0"],
                                  ["--device", "tpu"], ["--workers", "-2"], ["--preset", "huge"]])
def test_cli_bad_values_are_usage_errors(args, tmp_path):
    res = CliRunner().invoke(replicate_cmd, ["--out", str(tmp_path / "o"), *args])
    assert res.exit_code == 2, res.output
    assert not (tmp_path / "o").exists()


def test_cli_help_teaches():
    res = CliRunner().invoke(replicate_cmd, ["--help"])
    assert res.exit_code == 0
    for word in ("--pretext-seeds", "--pb-pretext-seeds", "--seeds", "--quick", "--force", "Scratch",
                 "shuffled", "arrow", "retrieval", "standard error"):
        assert word in res.output
    assert f"estimated ~{DEFAULT_MINUTES} min" in " ".join(res.output.split())   # the estimate, kept in sync


# ---- end to end (slow) ---------------------------------------------------------------------------

@pytest.mark.slow
def test_pipeline_end_to_end_and_resume(tmp_path, monkeypatch):
    from fastssl.replicate import runner

    out, work = tmp_path / "report", tmp_path / "work"
    plan = make_plan(SIZES["tiny"], 1, 1, controls=("rp",))
    # a first attempt dies in the second fine-tune: earlier runs keep their result.json
    calls = {"n": 0}
    real = runner.run_finetune

    def dying(ctx, run):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(ctx, run)

    monkeypatch.setattr(runner, "run_finetune", dying)
    with pytest.raises(KeyboardInterrupt):
        runner.replicate(out, plan, work=work, workers=0, report=lambda *a: None, crf_control=True)
    done = sorted(p.parent.name for p in (work / "runs").glob("*/result.json"))
    assert "scratch-f0" in done and "rp-p0-f0" not in done
    monkeypatch.setattr(runner, "run_finetune", real)

    lines = []
    summary = runner.replicate(out, plan, work=work, workers=0, report=lines.append, command_line="t",
                               crf_control=True)
    text = "\n".join(lines)
    assert "scratch-f0" not in text                       # finished: skipped, not rerun
    assert "rp-p0-f0" in text
    for name in ("table.md", "results.json", "pretext_curves.png", "finetune_accuracy.png"):
        assert (out / name).is_file()
    for name in FINETUNE_SETTINGS:
        row = summary["settings"][name]
        assert row["finetune_runs"] == 1
        assert 0 <= row["clip_accuracy"]["mean"] <= 1 and row["shuffled_clip_accuracy"] is not None
    assert set(summary["controls"]) == {"control-rp", "control-crf-rp"}
    assert "| Inflated | – | not run" in (out / "table.md").read_text()
    # frozen columns: every pretext checkpoint, and Scratch's random weights
    for name in FINETUNE_SETTINGS:
        assert 0 <= summary["settings"][name]["retrieval_top1"]["mean"] <= 1, name
        assert summary["settings"][name]["probe_clip_accuracy"] is not None, name
    rp = json.loads((work / "runs" / "rp-p0" / "result.json").read_text())
    assert rp["heldout_curve"] and rp["heldout_curve"][-1][0] == SIZES["tiny"].pretext_steps
    control = json.loads((work / "runs" / "control-rp-p0" / "result.json").read_text())
    assert control["questions"] >= SIZES["tiny"].control_questions and control["frozen"] is None

    # compare on the same runs' real evaluations gives replicate's rows
    evals = sorted(str(p.parent) for p in (work / "runs").glob("*/eval*/eval.json"))
    rows = rcompare.summarise(evals)["settings"]
    assert set(rows) == {"Scratch", "RP (pretext)", "SS (pretext)", "PB (pretext)", "PB (arrow)"}
    for name, label in (("scratch", "Scratch"), ("rp", "RP (pretext)"), ("pb-arrow", "PB (arrow)")):
        for key in ("clip_accuracy", "shuffled_drop"):
            assert rows[label][key]["mean"] == pytest.approx(summary["settings"][name][key]["mean"])
    assert rows["RP (pretext)"]["pretext_accuracy"]["mean"] == pytest.approx(
        summary["settings"]["rp"]["pretext_accuracy"]["mean"])

    # other sizes in the same work folder are refused (usage error in the CLI)
    with pytest.raises(runner.ReplicateError):
        runner.replicate(out, make_plan(SIZES["quick"], 1, 1), work=work, report=lambda *a: None)
