"""`fastssl bench`: runs end to end and writes the JSON the issue asks for; measures the real
code (timing hooks, one registry, no private access); the baseline loader decodes exactly the
windows of the plan (the same as fastssl's PyAV loader); bad flags are usage errors before any
work; no DALI is never a crash; bench/gpu_check.sh brings back at most 8 files."""
import ast
import importlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fastssl.benchmarks import baseline
from fastssl.benchmarks.components import DEFAULT_GROUPS, GROUPS, NEEDS, REGISTRY, display_order
from fastssl.benchmarks.runner import Settings, applicability, compute_ratios, merge_repeats
from fastssl.benchmarks.stats import measure, rate_stats, summarize
from fastssl.cli_bench import bench
from fastssl.config import resolve
from fastssl.data import loaders, pyav_loader
from fastssl.data.dataset import load_dataset
from fastssl.data.sampling import Geometry, PretextPlan, stream_keys
from videos import frame_ids, is_flipped, make_coded_dataset

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "fastssl" / "benchmarks"
NO_DALI = Path(__file__).parent / "without_dali"  # sitecustomize that hides any `nvidia` package

GEOM = Geometry(resize=(72, 96), size=64)
MEAN, STD = resolve("tiny", "pretrain").mean, resolve("tiny", "pretrain").std


def invoke(*args):
    return CliRunner().invoke(bench, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    return load_dataset(make_coded_dataset(tmp_path_factory.mktemp("coded"), frames=(30, 40, 36, 44),
                                           codec="vp9"))


@pytest.mark.slow
def test_bench_runs_end_to_end_and_writes_the_json(tmp_path):
    # The smallest real run: a tiny generated dataset, the four components the two headline
    # ratios need, each in its own process.
    out = tmp_path / "bench.json"
    result = invoke("--quick", "--device", "cpu", "--workers", "1", "--seconds", "0.3", "--warmup", "1",
                    "--repeats", "1",
                    "--steps", "2", "--classes", "2", "--videos-per-class", "3", "--frames", "24",
                    "--video-size", "96x72", "--only", "loader.pyav,loader.baseline,model.pretext,e2e.pretrain",
                    "--json", out)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["schema"] == "fastssl-bench/1"
    c = doc["components"]
    assert list(c) == ["loader.pyav", "loader.baseline", "model.pretext", "e2e.pretrain"]  # table order
    for name in c:
        assert c[name]["status"] == "ok", (name, c[name])
        assert c[name]["peak_rss_mb"] > 50, name  # torch alone is more than that
    med = {name: c[name]["metric"]["median"] for name in c}
    for m in (c["loader.pyav"]["metric"], c["loader.baseline"]["metric"], c["model.pretext"]["steps_per_s"]):
        assert m["n"] == len(m["samples"]) >= 3 and m["median"] == pytest.approx(np.median(m["samples"]))
    # model-only: clips/s = steps/s x B questions x N clips (tiny preset: B = 16)
    B = c["model.pretext"]["input"][0][0] // 6
    assert med["model.pretext"] == pytest.approx(c["model.pretext"]["steps_per_s"]["median"] * B * 6)
    ratios = doc["ratios"]
    assert ratios["loader_vs_baseline"] == pytest.approx(med["loader.pyav"] / med["loader.baseline"])
    assert ratios["e2e_vs_model"] == pytest.approx(med["e2e.pretrain"] / med["model.pretext"])
    assert doc["ratio_details"]["best_loader"] == "loader.pyav"
    assert c["loader.pyav"]["metric"]["unit"] == "questions/s"
    assert c["loader.pyav"]["clips_per_s"]["median"] == pytest.approx(6 * med["loader.pyav"])  # N = 6
    e2e = c["e2e.pretrain"]
    # the warm-up intervals are reported apart, the rest are the timed ones
    assert len(e2e["warmup"]) == e2e["warmup_steps"] // e2e["log_every"]
    assert e2e["metric"]["n"] == (e2e["steps"] - e2e["warmup_steps"]) // e2e["log_every"]
    assert e2e["data_wait_fraction"]["n"] == e2e["metric"]["n"]
    assert c["model.pretext"]["flops_per_step"] > 0
    machine = doc["machine"]
    assert machine["cpu_cores"] >= machine["cpu_cores_usable"] >= 1 and machine["gpu"] is None
    assert doc["dataset"]["generated"] and doc["dataset"]["codec"] == "vp9" and doc["dataset"]["videos"] == 6
    assert f"{'loader_vs_baseline':<22} {ratios['loader_vs_baseline']:8.3g}x" in result.output


def test_baseline_decodes_the_plans_windows(coded):
    plan = PretextPlan(coded.train, W=20, D=8, N=6, mode="rp", geometry=GEOM, seed=3)
    ours = pyav_loader.pretext_batches(plan, 4, workers=0)
    theirs = baseline.pretext_batches(plan, 4, workers=1, device="cpu", mean=MEAN, std=STD)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1, 1)
    flips = set()
    for step in range(2):
        a, b = next(ours), next(theirs)
        assert b["clips"].shape == (4, 6, 3, 8, 64, 64) and b["clips"].dtype == torch.float32
        keys = next(iter(stream_keys(plan.epoch_size, 4, start_step=step)))
        for k, (epoch, i) in enumerate(keys):
            window, q = plan.sample(epoch, i)
            # float clips back to uint8 frames (D, s, s, 3)
            frames = (b["clips"][k] * std + mean).round().clamp(0, 255).to(torch.uint8)
            frames = frames.permute(0, 2, 3, 4, 1).numpy()
            for n in range(6):
                expected = [window.start + int(t) for t in q.starts[n] + q.orders[n]]
                assert frame_ids(frames[n]) == expected
                assert is_flipped(frames[n]) == [window.flip] * 8
                pyav_frames = a["windows"][k].numpy()[q.starts[n] + q.orders[n]]
                assert frame_ids(pyav_frames) == expected
            assert int(b["label"][k]) == int(a["label"][k]) == q.label
            flips.add(window.flip)
    assert flips == {True, False}
    # the baseline's stream follows the loader contract: close() ends it (and its worker) now
    with ours, theirs:
        pass
    assert theirs.closed and ours.closed
    with pytest.raises(StopIteration):
        next(theirs)


def test_baseline_clips_are_normalized_like_the_clip_builder(coded):
    from fastssl.kernels import build_clips
    plan = PretextPlan(coded.train, W=20, D=8, N=6, mode="ss", geometry=GEOM, seed=5)
    a = next(pyav_loader.pretext_batches(plan, 2, workers=0))
    b = next(baseline.pretext_batches(plan, 2, workers=0, device="cpu", mean=MEAN, std=STD))
    ours = build_clips(a["windows"], a["starts"], a["orders"], mean=MEAN, std=STD)
    theirs, _ = baseline.to_device(b, "cpu")
    assert theirs.shape == ours.shape
    # different resizers (swscale from YUV vs torch from RGB): the coded grey levels agree closely
    assert (theirs - ours).abs().mean() < 0.1


@pytest.mark.parametrize("args,message", [
    (["--workers", "-1"], "x>=0"),
    (["--seconds", "0"], "x>=0.1"),
    (["--steps", "1"], "x>=2"),
    (["--time-budget", "0"], "x>=1"),
    (["--only", "nope"], "unknown group"),
    (["--skip", "loader,baseline,model,e2e,dp,op,profile"], "nothing left to run"),
    (["--resize", "big"], "is not of the form"),
    (["--video-size", "33x20"], "must be even"),
    (["--device", "tpu"], "'tpu' is not one of"),
    (["--preset", "huge"], "'huge' is not one of"),
    (["--size", "96"], "larger than the frames"),
    (["--frames", "10"], "a window needs W=20"),
    (["--codec", "avi"], "'avi' is not one of"),
])
def test_bad_flags_are_usage_errors(tmp_path, args, message):
    result = invoke("--quick", "--device", "cpu", "--json", tmp_path / "b.json", *args) \
        if "--device" not in args else invoke("--quick", "--json", tmp_path / "b.json", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "b.json").exists()  # refused before any work


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on GPU-less hosts")
def test_cuda_without_a_gpu_is_refused(tmp_path):
    result = invoke("--device", "cuda", "--json", tmp_path / "b.json")
    assert result.exit_code == 2 and "torch sees no GPU" in result.output


def test_choices_come_from_the_registry_and_presets():
    from fastssl.config import PRESETS
    params = {p.name: p for p in bench.params}
    assert list(params["preset"].type.choices) == list(PRESETS)
    result = invoke("--only", "nope", "--json", "x.json")
    for name in list(GROUPS) + list(REGISTRY):
        assert name in result.output


def test_one_registry_covers_every_component():
    assert set(DEFAULT_GROUPS) <= set(GROUPS) and "peers" not in DEFAULT_GROUPS
    assert {f"loader.{name}" for name in loaders.LOADERS} <= set(REGISTRY)  # every loader is measured
    assert sorted(display_order()) == sorted(REGISTRY)
    for name, c in REGISTRY.items():
        assert c.name == name and c.group in GROUPS and set(c.needs) <= set(NEEDS), c
        module, function = c.target.split(":")
        assert callable(getattr(importlib.import_module(f"fastssl.benchmarks.{module}"), function)), c


def test_applicability_says_why(monkeypatch):
    cpu = Settings(device="cpu", preset="tiny", precision="fp32")
    monkeypatch.setattr(loaders, "dali_available", lambda: False)
    assert applicability("loader.dali", cpu, {"vp9"}) == "nvidia-dali is not installed"
    assert applicability("op.dali", cpu, {"vp9"}) == "nvidia-dali is not installed"
    assert "needs a CUDA GPU" in applicability("op.triton", cpu, {"vp9"})
    assert applicability("loader.pyav-1t", cpu, set()) is None
    assert "CPU only" in applicability("loader.pyav-1t", Settings(device="cuda", preset="tiny", precision="bf16"),
                                       set())
    for name in ("loader.pyav", "loader.baseline", "model.pretext", "e2e.pretrain", "profile", "op.copy"):
        assert applicability(name, cpu, {"vp9"}) is None, name


def test_machine_probes_never_raise():
    from fastssl.benchmarks.machine import installed
    assert installed("numpy") and not installed("no_such_package_here")
    assert not installed("no_such_package_here.sub")  # find_spec would raise ModuleNotFoundError


def _imported_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def test_the_bench_uses_no_private_names_and_patches_no_module():
    for path in sorted(BENCHMARKS.glob("*.py")) + [ROOT / "fastssl" / "cli_bench.py"]:
        text = path.read_text()
        tree = ast.parse(text)
        modules = _imported_names(tree) - {"sys"}  # sys.stdout may be redirected
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.endswith("__"):
                assert isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"), \
                    f"{path.name}:{node.lineno}: private access {ast.unparse(node)}"
            if isinstance(node, ast.ImportFrom):
                assert not any(a.name.startswith("_") for a in node.names), f"{path.name}:{node.lineno}"
            if isinstance(node, (ast.Assign, ast.AugAssign)):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                        assert target.value.id not in modules, \
                            f"{path.name}:{node.lineno}: assigns to a module: {ast.unparse(target)}"
        # find_spec of a dotted name raises when its parent is missing: only machine.installed calls it
        if path.name != "machine.py":
            assert "find_spec" not in text, path.name


def test_profile_reads_the_real_code_stage_by_stage(coded, tmp_path):
    from fastssl.benchmarks import decoding
    from fastssl.benchmarks.common import config, key_stream_samples, pretext_plan
    from fastssl.data.pyav_decode import WindowDecoder
    spec = {"data": coded.root, "preset": "tiny", "device": "cpu", "precision": "fp32", "workers": 0,
            "seconds": 0.1, "warmup": 0, "profile_questions": 10, "resize": [72, 96], "size": 64,
            "workdir": str(tmp_path)}
    out = decoding.profile(spec)
    names = decoding.STAGE_NAMES["fastssl"]
    assert list(out["fastssl_ms_per_question"]) == [names[k] for k in WindowDecoder.STAGES] + [
        "crop + flip", "clip builder (main process, after hand-over)"]
    assert all(v > 0 for v in out["fastssl_ms_per_question"].values())
    assert list(out["baseline_ms_per_question"])[:4] == [decoding.STAGE_NAMES["baseline"][k]
                                                         for k in WindowDecoder.STAGES]
    assert all(v > 0 for v in out["baseline_ms_per_question"].values())
    # the decoder kept every file open (fewer than its 8): only each video's first window opened one
    cfg = config(spec)
    samples = key_stream_samples(pretext_plan(cfg, coded.train))
    videos = [next(samples)[0].video for _ in range(10)]
    assert len(set(videos)) <= 8
    assert out["fastssl_open_file_hits"] == pytest.approx((10 - len(set(videos))) / 10)
    assert out["metric"]["median"] == pytest.approx(out["baseline_total_ms_real_code"]
                                                    / out["fastssl_total_ms_real_code"])


def test_stats_and_ratios():
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0], "x/s")
    assert s["median"] == 3.0 and s["p25"] == 2.0 and s["p75"] == 4.0 and s["n"] == 5
    assert s["spread"] == pytest.approx(2 / 3)
    samples = measure(lambda: 2, warmup=1, seconds=0.0, min_samples=4)
    assert len(samples) == 4 and all(items == 2 for _, items in samples)
    r = rate_stats([(0.5, 10), (1.0, 10)], "q/s")
    assert r["median"] == 15.0 and r["aggregate"] == pytest.approx(20 / 1.5)

    def ok(median, **extra):
        return {"status": "ok", "metric": {"median": median}, **extra}
    ratios, details = compute_ratios({
        "loader.pyav": ok(30.0), "loader.dali": ok(45.0), "loader.baseline": ok(15.0),
        "model.pretext": ok(600.0, questions_per_s={"median": 100.0}), "e2e.pretrain": ok(540.0),
        "op.copy": ok(20.0), "op.reference": ok(2.0), "model.finetune": {"status": "skipped"}})
    assert ratios["loader_vs_baseline"] == 3.0 and details["best_loader"] == "loader.dali"
    assert ratios["e2e_vs_model"] == pytest.approx(0.9) and ratios["loader_vs_model"] == 0.45
    assert ratios["op_reference_vs_copy"] == 0.1 and ratios["e2e_finetune_vs_model"] is None


def test_one_component_alone_prints_json_on_stdout(tmp_path):
    import subprocess
    import sys
    spec = {"data": str(tmp_path), "preset": "tiny", "device": "cpu", "precision": "fp32", "workers": 0,
            "seconds": 0.2, "warmup": 0}
    out = subprocess.run([sys.executable, "-m", "fastssl.benchmarks.run_component", "op.copy", "--json",
                          json.dumps(spec)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)  # nothing but the JSON on stdout
    assert result["status"] == "ok" and result["metric"]["unit"] == "GB/s" and result["peak_rss_mb"] > 0


def test_a_component_past_its_time_is_killed_and_reported(tmp_path):
    from fastssl.benchmarks.isolation import spawn
    spec = {"data": str(tmp_path), "preset": "tiny", "device": "cpu", "precision": "fp32", "workers": 0,
            "seconds": 60, "warmup": 0}
    result = spawn("op.copy", spec, timeout=0.5, log_dir=tmp_path)
    assert result["status"] == "timeout" and "killed after" in result["reason"]


def test_repeats_pool_the_samples_and_keep_each_ratio():
    def run(samples):
        return {"status": "ok", "metric": rate_stats([(1.0, x) for x in samples], "questions/s"),
                "clips_per_s": {"median": 6 * sorted(samples)[len(samples) // 2]}, "peak_rss_mb": samples[0]}
    pyav = merge_repeats([run([10, 20, 30]), run([40, 50, 60])])
    base = merge_repeats([run([5, 10, 15]), run([20, 25, 30])])
    assert pyav["repeat_medians"] == [20, 50] and pyav["metric"]["median"] == 35 and pyav["metric"]["n"] == 6
    assert pyav["clips_per_s"]["median"] == 6 * 35 and pyav["peak_rss_mb"] == 40
    ratios, details = compute_ratios({"loader.pyav": pyav, "loader.baseline": base})
    assert ratios["loader_vs_baseline"] == 35 / 17.5
    assert details["pyav_vs_baseline_per_repeat"] == [2.0, 2.0]


def _bench_without_dali(tmp_path, data, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(NO_DALI), os.environ.get("PYTHONPATH", "")])}
    code = "import sys; from fastssl.cli_bench import bench; sys.argv = ['fastssl bench'] + sys.argv[1:]; bench()"
    return subprocess.run([sys.executable, "-c", code, "--device", "cpu", "--data", str(data), "--workers", "0",
                           "--seconds", "0.2", "--warmup", "0", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)


@pytest.mark.slow  # ~8 s: a fresh interpreter, the component server's imports
def test_bench_without_any_nvidia_package_skips_dali(coded, tmp_path):
    out = tmp_path / "b.json"
    result = _bench_without_dali(tmp_path, coded.root, "--only", "op.copy,loader.dali,op.dali", "--json", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    doc = json.loads(out.read_text())
    assert doc["machine"]["dali"] is None
    c = doc["components"]
    assert c["op.copy"]["status"] == "ok"
    for name in ("loader.dali", "op.dali"):
        assert c[name]["status"] == "skipped" and c[name]["reason"] == "nvidia-dali is not installed", c[name]
    assert "skip loader.dali: nvidia-dali is not installed" in result.stdout


STEP_LINE = "{name:8} "


@pytest.mark.slow
def test_gpu_check_brings_back_at_most_8_files(tmp_path):
    # A dry run on this GPU-less host: every step runs (GPU steps as plumbing checks) or skips.
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_S": "300"}
    result = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), str(out)], env=env,
                            capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(len(p.relative_to(out).parts) <= 3 for p in out.rglob("*"))
    assert sorted(p.name for p in files) == ["bench.json", "logs.tar.gz", "summary.txt"]
    table = (ROOT / "bench" / "gpu_check.sh").read_text().split('STEPS="', 1)[1].split('"', 1)[0]
    steps = [line.split()[0] for line in table.splitlines() if line.strip() and not line.startswith("#")]
    assert steps[:3] == ["env", "torch", "dali"] and steps[-1] == "bench"
    summary = (out / "summary.txt").read_text()
    for name in steps:
        assert any(line.startswith(STEP_LINE.format(name=name)) for line in summary.splitlines()), name
    with tarfile.open(out / "logs.tar.gz") as tar:
        logs = sorted(Path(n).name for n in tar.getnames() if n.endswith(".log"))
    assert logs == [f"{i:02d}-{name}.log" for i, name in enumerate(steps, 1)]
    assert "env      ok" in summary and "bench    ok" in summary
    assert json.loads((out / "bench.json").read_text())["components"]["op.copy"]["status"] == "ok"


# ---- data parallel (issue 10): the real pretrain command under torchrun, 1 and 2 processes ----

def test_dp_components_launch_the_real_command_and_split_the_global_batch(monkeypatch):
    from fastssl.benchmarks import parallel, runner
    assert parallel.global_batch(16, 2) == 16 and parallel.global_batch(17, 2) == 16
    assert parallel.global_batch(64, 3) == 63
    with pytest.raises(ValueError, match="at least 2 each"):
        parallel.global_batch(3, 2)
    spec = {"data": "/d", "preset": "tiny", "device": "cpu", "precision": "fp32", "resize": [72, 96]}
    line = parallel.launch_line(spec, 2, out="/o", batch=8, steps=7, log_every=1, workers=0, loader="pyav")
    assert line[:6] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    assert line[6:9] == ["-m", "fastssl", "pretrain"]
    i = line.index("--batch-size")
    assert line[i + 1] == "8" and line[line.index("--resize") + 1] == "72x96" and "--force" in line
    # what runs where: dp.1 and dp.2 on the CPU (gloo); on CUDA dp.2 needs 2 GPUs, dp.gpus more than 2
    cpu = Settings(device="cpu", preset="tiny", precision="fp32")
    assert applicability("dp.1", cpu, set()) is None and applicability("dp.2", cpu, set()) is None
    assert "CUDA only" in applicability("dp.gpus", cpu, set())
    cuda = Settings(device="cuda", preset="paper", precision="bf16")
    for gpus, two, more in ((1, "2 GPUs", "more than 2"), (2, None, "more than 2"), (4, None, None)):
        monkeypatch.setattr(runner, "visible_gpus", lambda: gpus)
        why2, why3 = applicability("dp.2", cuda, set()), applicability("dp.gpus", cuda, set())
        assert (why2 is None) == (two is None) and (two is None or two in why2), (gpus, why2)
        assert (why3 is None) == (more is None) and (more is None or more in why3), (gpus, why3)
    assert {REGISTRY[n].group for n in ("dp.1", "dp.2", "dp.gpus")} == {"dp"} and "dp" in DEFAULT_GROUPS


def test_dp_ratio_and_efficiency():
    def ok(median, ranks):
        return {"status": "ok", "metric": {"median": median}, "ranks": ranks}
    ratios, details = compute_ratios({"dp.1": ok(100.0, 1), "dp.2": ok(150.0, 2), "dp.gpus": ok(600.0, 8)})
    assert ratios["dp_2_vs_1"] == 1.5 and details["dp_2_efficiency"] == 0.75
    assert ratios["dp_gpus_vs_1"] == 6.0 and details["dp_gpus_ranks"] == 8 and details["dp_gpus_efficiency"] == 0.75
    ratios, _ = compute_ratios({"dp.1": ok(100.0, 1), "dp.2": {"status": "skipped"}})
    assert ratios["dp_2_vs_1"] is None


@pytest.mark.slow  # ~40-60 s on 2 cores: two torchrun launches of the real pretrain command
def test_bench_dp_section_runs_one_and_two_processes(tmp_path):
    out = tmp_path / "bench.json"
    result = invoke("--device", "cpu", "--only", "dp", "--workers", "0", "--batch-size", "4", "--steps", "2",
                    "--classes", "2", "--videos-per-class", "3", "--frames", "24", "--video-size", "96x72",
                    "--time-budget", "400", "--json", out)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    c = doc["components"]
    assert list(c) == ["dp.1", "dp.2", "dp.gpus"]
    assert c["dp.gpus"]["status"] == "skipped" and "CUDA only" in c["dp.gpus"]["reason"]
    cores = doc["machine"]["cpu_cores_usable"]
    for name, ranks in (("dp.1", 1), ("dp.2", 2)):
        d = c[name]
        assert d["status"] == "ok", (name, d.get("error"), d.get("traceback"))
        assert d["ranks"] == ranks and d["backend"] == "gloo" and d["exit_status"] == 0
        assert d["global_batch"] == 4 and d["per_rank_batch"] == 4 // ranks  # the same global batch
        assert d["threads_per_rank"] == max(1, cores // ranks)
        assert f"--nproc-per-node {ranks} -m fastssl pretrain" in d["launch"]
        assert d["launch"].startswith("torchrun --standalone")
        # warm-up intervals apart; every timed interval counted
        assert d["metric"]["unit"] == "clips/s" and d["metric"]["median"] > 0
        assert d["metric"]["n"] == (d["steps"] - d["warmup_steps"]) // d["log_every"] == 2
        assert len(d["warmup"]) == d["warmup_steps"] // d["log_every"]
    assert "data_wait_fraction_max" in c["dp.2"]  # reduced over ranks: mean and max
    ratio = doc["ratios"]["dp_2_vs_1"]
    assert ratio == pytest.approx(c["dp.2"]["metric"]["median"] / c["dp.1"]["metric"]["median"])
    assert doc["ratio_details"]["dp_2_efficiency"] == pytest.approx(ratio / 2)
    assert f"{'dp_2_vs_1':<22} {ratio:8.3g}x" in result.output
