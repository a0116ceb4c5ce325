"""fastssl replicate: the plan, the report's numbers and table (fast), the CLI's usage errors
(fast), and the whole pipeline end to end at a tiny size, with resume (slow)."""
import json
import math

import pytest
from click.testing import CliRunner

from fastssl.cli_replicate import replicate as replicate_cmd
from fastssl.replicate import SIZES, make_plan
from fastssl.replicate import datasets as rdata
from fastssl.replicate import report
from fastssl.replicate.plan import FINETUNE_SETTINGS


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
    assert report.fmt(s) == "30.0 ± 14.1"
    assert report.fmt(report.stats([0.25])) == "25.0"
    assert report.fmt(None) == "–" and report.stats([None]) is None


def test_compare_calls_small_gaps_noise():
    a, b = report.stats([0.30, 0.34]), report.stats([0.28, 0.32])
    c = report.compare(a, b)
    assert c["diff"] == pytest.approx(0.02) and c["noise"]
    assert c["n_needed"] == math.ceil(8 * (a["std"] ** 2 + b["std"] ** 2) / 0.02 ** 2)
    far = report.compare(report.stats([0.9, 0.91]), b)
    assert not far["noise"]
    assert report.compare(report.stats([0.3]), b) is None


def _fake_results(plan):
    out = []
    for r in plan.runs:
        base = dict(key=r.key, setting=r.setting, kind=r.kind, seed=r.seed, mode=r.mode,
                    dataset=r.dataset, pretext_seed=r.pretext_seed)
        if r.kind == "pretext":
            acc = 1 / 6 if r.setting.startswith("control") else 0.9
            out.append(dict(base, pretext_accuracy=acc, chance=1 / 6, questions=400,
                            curve=[[10, 0.2], [20, acc]]))
        else:
            clip = 0.3 + 0.01 * r.seed + (0.1 if r.setting == "rp" else 0)
            out.append(dict(base, clip_accuracy=clip, video_accuracy=clip + 0.05,
                            shuffled_clip_accuracy=clip - 0.1, shuffled_video_accuracy=clip,
                            chance=0.1, train_accuracy=1.0))
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
    assert "| 4 |" in row["Scratch"]                      # n = P x K for every row
    assert "90.0 ± 0.0" in row["RP"]                      # pretext accuracy
    assert "10.0 ± 0.0" in row["SS"]                      # the shuffled-frames drop
    assert "`fastssl replicate --x`" in text
    assert "P=2" in text and "K=2" in text
    assert "RP vs Scratch: +9.0 pts" in text      # 40.5 vs 31.5
    assert "inside the noise" in text                     # SS vs Scratch: same numbers
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["settings"]["rp"]["clip_accuracy"]["n"] == 4
    assert data["controls"]["control-rp"]["at_chance"] is True
    for png in ("pretext_curves.png", "finetune_accuracy.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / png).stat().st_size < 200_000


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
    for word in ("--pretext-seeds", "--seeds", "--quick", "--force", "Scratch", "shuffled", "arrow"):
        assert word in res.output


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
        runner.replicate(out, plan, work=work, workers=0, report=lambda *a: None)
    done = sorted(p.parent.name for p in (work / "runs").glob("*/result.json"))
    assert "scratch-f0" in done and "rp-p0-f0" not in done
    monkeypatch.setattr(runner, "run_finetune", real)

    lines = []
    summary = runner.replicate(out, plan, work=work, workers=0, report=lines.append, command_line="t")
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

    # other sizes in the same work folder are refused (usage error in the CLI)
    with pytest.raises(runner.ReplicateError):
        runner.replicate(out, make_plan(SIZES["quick"], 1, 1), work=work, report=lambda *a: None)
