"""`fastssl bench`: runs end to end and writes the JSON the issue asks for; the baseline loader
decodes exactly the windows of the plan (the same as fastssl's PyAV loader); bad flags are
usage errors before any work."""
import json

import pytest
import torch
from click.testing import CliRunner

from fastssl.benchmarks import baseline
from fastssl.benchmarks.runner import compute_ratios, merge_repeats
from fastssl.benchmarks.stats import measure, rate_stats, summarize
from fastssl.cli_bench import bench
from fastssl.config import resolve
from fastssl.data import pyav_loader
from fastssl.data.dataset import load_dataset
from fastssl.data.sampling import Geometry, PretextPlan, stream_keys
from videos import frame_ids, is_flipped, make_coded_dataset

GEOM = Geometry(resize=(72, 96), size=64)
MEAN, STD = resolve("tiny", "pretrain").mean, resolve("tiny", "pretrain").std


def invoke(*args):
    return CliRunner().invoke(bench, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    return load_dataset(make_coded_dataset(tmp_path_factory.mktemp("coded"), frames=(30, 40, 36, 44),
                                           codec="vp9"))


def test_bench_runs_end_to_end_and_writes_the_json(tmp_path):
    # The smallest real run: a tiny generated dataset, the four components the two headline
    # ratios need, each in its own process. (`--quick` is this with every component: ~100 s.)
    out = tmp_path / "bench.json"
    result = invoke("--quick", "--device", "cpu", "--workers", "1", "--seconds", "0.3", "--warmup", "1",
                    "--repeats", "1",
                    "--steps", "2", "--classes", "2", "--videos-per-class", "3", "--frames", "24",
                    "--video-size", "96x72", "--only", "loader.pyav,loader.baseline,model.pretext,e2e.pretrain",
                    "--json", out)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["schema"] == "fastssl-bench/1"
    ratios = doc["ratios"]
    assert ratios["loader_vs_baseline"] > 0 and ratios["e2e_vs_model"] > 0
    assert doc["ratio_details"]["best_loader"] == "loader.pyav"
    machine = doc["machine"]
    for key in ("cpu", "cpu_cores", "memory_gib", "python", "torch", "dali", "av", "triton", "gpu"):
        assert key in machine, key
    assert set(doc["components"]) == {"loader.pyav", "loader.baseline", "model.pretext", "e2e.pretrain"}
    for name, c in doc["components"].items():
        assert c["status"] == "ok", (name, c)
        m = c["metric"]
        assert m["median"] > 0 and m["p25"] <= m["median"] <= m["p75"] and m["n"] >= 1, (name, m)
        assert m["spread"] is not None and c["peak_rss_mb"] > 0
    assert doc["components"]["loader.pyav"]["metric"]["unit"] == "questions/s"
    assert 0 <= doc["components"]["e2e.pretrain"]["data_wait_fraction"]["median"] <= 1
    assert doc["components"]["model.pretext"]["flops_per_step"] > 0
    assert doc["dataset"]["generated"] and doc["dataset"]["codec"] == "vp9"
    assert "loader_vs_baseline" in result.output and "JSON:" in result.output


def test_baseline_decodes_the_plans_windows(coded):
    plan = PretextPlan(coded.train, W=20, D=8, N=6, mode="rp", geometry=GEOM, seed=3)
    ours = pyav_loader.pretext_batches(plan, 4, workers=0)
    theirs = baseline.pretext_batches(plan, 4, workers=0, device="cpu", mean=MEAN, std=STD)
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
    (["--skip", "loader,baseline,model,e2e,op,profile"], "nothing left to run"),
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
    result = spawn("op.copy", spec, timeout=2.0, log_dir=tmp_path)
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
