"""`fastssl bench`: runs end to end and writes the JSON; measures the real code (one registry, no
private access, no patched modules); the baseline decodes exactly the plan's windows; the host
headroom keeps the loop's work and drops only the model's; bad flags are usage errors before any
work; no DALI is never a crash; bench/gpu_check.sh ranks its steps, skips the lowest ones when
time runs out, and brings back at most 8 files."""
import ast
import inspect
import importlib
import json
import os
import subprocess
import sys
import tarfile
import types
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fastssl.benchmarks import baseline, runner
from fastssl.benchmarks.registry import DEFAULT_GROUPS, GROUPS, QUICK_SKIP, REGISTRY, applicability
from fastssl.benchmarks.runner import RATIOS, compute_ratios, run_bench
from fastssl.benchmarks.stats import measure, rate_stats, summarize
from fastssl.cli_bench import bench
from fastssl.config import resolve
from fastssl.data import loaders, pyav_loader
from fastssl.data.dataset import load_dataset
from fastssl.data.sampling import Geometry, PretextPlan, stream_keys
from videos import frame_ids, is_flipped, make_coded_dataset

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "fastssl" / "benchmarks"
GPU_CHECK = ROOT / "bench" / "gpu_check.sh"
NO_DALI = Path(__file__).parent / "without_dali"  # sitecustomize that hides any `nvidia` package

GEOM = Geometry(resize=(72, 96), size=64)
MEAN, STD = resolve("tiny", "pretrain").mean, resolve("tiny", "pretrain").std


def invoke(*args):
    return CliRunner().invoke(bench, [str(a) for a in args], catch_exceptions=False)


def spec_for(root, tmp_path, **extra):
    return {"data": str(root), "preset": "tiny", "device": "cpu", "precision": "fp32", "workers": 0,
            "seconds": 0.2, "warmup": 0, "workdir": str(tmp_path), "e2e_loader": "pyav", **extra}


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    return load_dataset(make_coded_dataset(tmp_path_factory.mktemp("coded"), frames=(30, 40, 36, 44),
                                           codec="vp9"))


# ---- the baseline loader --------------------------------------------------------------------

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
            frames = (b["clips"][k] * std + mean).round().clamp(0, 255).to(torch.uint8)  # back to (D, s, s, 3)
            frames = frames.permute(0, 2, 3, 4, 1).numpy()
            for n in range(6):
                expected = [window.start + int(t) for t in q.starts[n] + q.orders[n]]
                assert frame_ids(frames[n]) == expected
                assert is_flipped(frames[n]) == [window.flip] * 8
                assert frame_ids(a["windows"][k].numpy()[q.starts[n] + q.orders[n]]) == expected
            assert int(b["label"][k]) == int(a["label"][k]) == q.label
            flips.add(window.flip)
    assert flips == {True, False}
    with ours, theirs:  # the baseline's stream follows the loader contract: close() ends it now
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
    theirs = b["clips"].flatten(0, 1)
    assert theirs.shape == ours.shape
    # different resizers (swscale from YUV vs torch from RGB): the coded grey levels agree closely
    assert (theirs - ours).abs().mean() < 0.1


# ---- the command line -----------------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (["--workers", "-1"], "x>=0"),
    (["--seconds", "0"], "x>=0.1"),
    (["--steps", "1"], "x>=2"),
    (["--host-steps", "1"], "x>=2"),
    (["--time-budget", "0"], "x>=1"),
    (["--only", "nope"], "unknown group"),
    (["--skip", ",".join(GROUPS)], "nothing left to run"),
    (["--resize", "big"], "is not of the form"),
    (["--video-size", "33x20"], "must be even"),
    (["--device", "tpu"], "'tpu' is not one of"),
    (["--preset", "huge"], "'huge' is not one of"),
    (["--size", "96"], "larger than the frames"),
    (["--frames", "10"], "a window needs W=20"),
    (["--codec", "avi"], "'avi' is not one of"),
])
def test_bad_flags_are_usage_errors(tmp_path, args, message):
    device = [] if "--device" in args else ["--device", "cpu"]
    result = invoke("--quick", *device, "--json", tmp_path / "b.json", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "b.json").exists()  # refused before any work


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on GPU-less hosts")
def test_cuda_without_a_gpu_is_refused(tmp_path):
    result = invoke("--device", "cuda", "--json", tmp_path / "b.json")
    assert result.exit_code == 2 and "torch sees no GPU" in result.output


def test_choices_come_from_the_registry_and_presets():
    from fastssl.config import DEVICES, PRECISIONS, PRESETS
    params = {p.name: p for p in bench.params}
    assert list(params["preset"].type.choices) == list(PRESETS)
    assert tuple(params["device"].type.choices) == DEVICES and tuple(params["precision"].type.choices) == PRECISIONS
    result = invoke("--only", "nope", "--json", "x.json")
    for name in list(GROUPS) + list(REGISTRY):
        assert name in result.output


# ---- the registry and the runner ------------------------------------------------------------

def _ratio_inputs(keys) -> set:
    sides = {side for key in keys for side in RATIOS[key][:2] if side}
    best = {"loader.pyav", "loader.dali"} if "best" in sides else set()
    return best | {s.split(":")[0] for s in sides - {"best"}}


def test_ratio_inputs_run_first_and_every_component_takes_its_arguments(tmp_path):
    # Every ratio names components that exist; the headline ratios' inputs come before anything
    # no ratio reads, so a tight budget drops extras first; each target accepts its arguments.
    inputs = _ratio_inputs(RATIOS)
    assert inputs <= set(REGISTRY), inputs - set(REGISTRY)
    order = list(REGISTRY)
    headline = _ratio_inputs(["loader_vs_baseline", "e2e_vs_model"]) - {"loader.dali"}
    extras = [n for n in order if n not in inputs]
    assert extras and max(order.index(n) for n in headline) < min(order.index(n) for n in extras)
    assert order.index("host.finetune.pyav") < min(order.index(n) for n in extras)
    for name, c in REGISTRY.items():
        module, function = c.target.split(":")
        fn = getattr(importlib.import_module(f"fastssl.benchmarks.{module}"), function)
        inspect.signature(fn).bind({}, *c.args)  # TypeError when the registry and the function disagree
        assert c.group in GROUPS
    assert {c.group for c in REGISTRY.values()} == set(GROUPS)
    assert "compile" not in DEFAULT_GROUPS and set(QUICK_SKIP) <= set(REGISTRY)


def test_run_bench_runs_in_priority_order_and_skips_what_the_budget_cannot_fit(coded, tmp_path, monkeypatch):
    clock = [0.0]
    ran = []

    def fake_spawn(name, spec, timeout, log_dir):
        ran.append((name, timeout))
        clock[0] += 50.0  # each component takes 50 s
        return {"status": "ok", "metric": {"median": 10.0 * len(ran), "unit": "questions/s", "n": 3},
                "peak_rss_mb": 100.0, "wall_seconds": 50.0, "notes": []}

    monkeypatch.setattr(runner, "spawn", fake_spawn)
    monkeypatch.setattr(runner, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    out = tmp_path / "b.json"
    lines = []
    spec = {"preset": "tiny", "device": "cpu", "precision": "fp32", "mode": "rp", "workers": 0, "seconds": 3.0,
            "steps": 4}
    run = {"groups": ("loader", "baseline", "model", "e2e"), "drop": ("loader.dali",), "time_budget": 120.0,
           "data": coded.root}
    doc = run_bench(spec, run, out, echo=lines.append)
    # 120 s: the first two take 100 s, the third starts with 18 s left (capped there), then none
    assert [n for n, _ in ran] == ["loader.pyav", "loader.baseline", "model.pretext"]
    assert ran[2][1] == pytest.approx(120 - 100 - runner.RESERVE_S)
    c = json.loads(out.read_text())["components"]
    assert "loader.dali" not in c
    for name in ("model.finetune", "e2e.pretrain", "e2e.finetune"):
        assert c[name]["status"] == "skipped" and "time budget" in c[name]["reason"], name
    assert doc["ratios"]["loader_vs_baseline"] == pytest.approx(10 / 20)
    assert list(c) == ["loader.pyav", "loader.baseline", "model.pretext", "model.finetune", "e2e.pretrain",
                       "e2e.finetune"]  # the table's order: by group, then priority
    printed = "\n".join(lines).splitlines()
    assert any(line.startswith("  loader_vs_baseline") and "MISSED" in line for line in printed)


def test_applicability_says_why(monkeypatch):
    assert "needs a CUDA GPU" in applicability("op.triton", "cpu", {"vp9"})
    for name in ("loader.pyav", "loader.baseline", "model.pretext", "e2e.pretrain", "host.finetune.pyav",
                 "eval.videos", "op.copy", "dp.1", "dp.2"):
        assert applicability(name, "cpu", {"vp9"}) is None, name
    monkeypatch.setattr(loaders, "dali_available", lambda: False)
    for name in ("loader.dali", "host.finetune.dali", "host.pretrain.dali"):
        assert applicability(name, "cpu", {"vp9"}) == "nvidia-dali is not installed"


# ---- measuring the real code, nothing private -----------------------------------------------

def _root_name(node):
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def bench_violations(source: str) -> list[str]:
    """Private access (x._y, getattr(x, "_y"), from m import _y) other than through self/cls, and
    changes to an imported module (m.a = ..., m.a.b += ..., del m.a, setattr/delattr(m, ...))."""
    tree = ast.parse(source)
    modules = {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
               for a in n.names} - {"sys"}  # sys.stdout may be redirected
    found = []
    for node in ast.walk(tree):
        where = f"line {getattr(node, 'lineno', '?')}: "
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.endswith("__") \
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            found.append(where + "private " + ast.unparse(node))
        if isinstance(node, ast.ImportFrom) and any(a.name.startswith("_") for a in node.names):
            found.append(where + "private import " + ast.unparse(node))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
            name = node.func.id
            if name in ("getattr", "setattr", "delattr", "hasattr") and len(node.args) > 1 \
                    and isinstance(node.args[1], ast.Constant) and str(node.args[1].value).startswith("_"):
                found.append(where + "private " + ast.unparse(node))
            if name in ("setattr", "delattr") and _root_name(node.args[0]) in modules:
                found.append(where + "patches a module: " + ast.unparse(node))
        targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            if isinstance(target, (ast.Attribute, ast.Subscript)) and _root_name(target) in modules:
                found.append(where + "patches a module: " + ast.unparse(target))
    return found


@pytest.mark.parametrize("bad", [
    "import torch\ntorch.foo = 1",
    "import torch\ntorch.backends.cudnn.benchmark = True",
    "from fastssl.data import loaders\nloaders.get = None",
    "from fastssl.data import loaders\nsetattr(loaders, 'get', None)",
    "import os\ndel os.environ",
    "import fastssl.data.pyav_loader as p\np.LOADERS += ()",
    "x = obj._private",
    "y = getattr(obj, '_private')",
    "from fastssl.data.pyav_loader import _stream",
])
def test_the_private_and_patch_check_catches(bad):
    assert bench_violations(bad), bad


def test_the_bench_uses_no_private_names_and_patches_no_module():
    assert not bench_violations("class A:\n    def f(self):\n        self._x = self.__class__\n        cls._y = 1")
    for path in sorted(BENCHMARKS.glob("*.py")) + [ROOT / "fastssl" / "cli_bench.py"]:
        assert not bench_violations(path.read_text()), (path.name, bench_violations(path.read_text()))


# ---- figures --------------------------------------------------------------------------------

def test_stats_and_ratios():
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0], "x/s")
    assert s["median"] == 3.0 and s["p25"] == 2.0 and s["p75"] == 4.0 and s["n"] == 5
    assert s["spread"] == pytest.approx(2 / 3)
    samples = measure(lambda: 2, warmup=1, seconds=0.0, min_samples=4)
    assert len(samples) == 4 and all(items == 2 for _, items in samples)
    assert rate_stats([(0.5, 10), (1.0, 10)], "q/s")["median"] == 15.0

    def ok(median, **extra):
        return {"status": "ok", "metric": {"median": median}, **extra}
    ratios, details = compute_ratios({
        "loader.pyav": ok(30.0), "loader.dali": ok(45.0), "loader.baseline": ok(15.0),
        "model.pretext": ok(600.0, questions_per_s={"median": 100.0}), "e2e.pretrain": ok(540.0),
        "op.copy": ok(20.0), "op.reference": ok(2.0), "model.finetune": {"status": "skipped"},
        "host.finetune.pyav": ok(3.0, host_vs_gpu=0.5), "host.pretrain.dali": {"status": "error", "host_vs_gpu": 9},
        "loader.dali.x": ok(1.0), "dp.1": ok(100.0), "dp.2": ok(150.0),
        "compile.finetune": ok(2.0, compiled_vs_eager=1.7)})
    assert ratios["loader_vs_baseline"] == 3.0 and details["best_loader"] == "loader.dali"
    assert ratios["e2e_vs_model"] == pytest.approx(0.9) and ratios["loader_vs_model"] == 0.45
    assert ratios["op_reference_vs_copy"] == 0.1 and ratios["e2e_finetune_vs_model"] is None
    assert ratios["host_vs_gpu_finetune_pyav"] == 0.5 and ratios["host_vs_gpu_pretrain_dali"] is None
    assert ratios["dp_2_vs_1"] == 1.5 and details["dp_2_efficiency"] == 0.75
    assert ratios["compiled_vs_eager_finetune"] == 1.7 and ratios["chunk_gap_vs_median"] is None
    ratios, _ = compute_ratios({"loader.dali": ok(1.0, chunk_boundaries={"gap_vs_median": 4.0})})
    assert ratios["chunk_gap_vs_median"] == 4.0


def test_chunk_gaps_finds_the_switch_between_reader_chunks():
    from fastssl.benchmarks.loader_bench import chunk_gaps
    from fastssl.data.dali import PREFETCH
    from fastssl.data.dali.reader import CHUNK_BATCHES
    cfg = types.SimpleNamespace(decoders=1)
    gaps = [2.0] + [0.1] * 9  # the first batch waits for the first pipeline: not a step gap
    spike = CHUNK_BATCHES - PREFETCH  # where the next chunk's first batch is queued

    def batches(n):
        for _ in range(n):
            gaps.append(0.9 if len(gaps) + 1 == spike else 0.4 if len(gaps) + 1 == 20 else 0.1)
    out = chunk_gaps({"chunk_seconds": 60.0}, cfg, batches, gaps)
    assert out["reached"] and out["at_step"] == spike and out["max_gap_s"] == 0.9
    assert out["gap_vs_median"] == pytest.approx(9.0) and out["max_gap_elsewhere_s"] == 0.4
    assert out["batches"] == CHUNK_BATCHES + PREFETCH + 2
    short = [2.0] + [0.1] * 9  # crossing a boundary would take longer than allowed: not reached
    out = chunk_gaps({"chunk_seconds": 1.0}, cfg, lambda n: pytest.fail("ran past the allowed time"), short)
    assert not out["reached"] and out["batches"] == 10


def test_flops_counted_on_meta_match_a_real_step(coded):
    from torch.utils.flop_counter import FlopCounterMode

    from fastssl.benchmarks.model import flops_per_sample
    from fastssl.models import build_classifier
    cfg = resolve("tiny", "finetune", data=str(coded.root), out="")
    net = build_classifier(cfg, 2)
    x = torch.zeros(2, 3, cfg.D, cfg.size, cfg.size).to(memory_format=torch.channels_last_3d)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(net(x), torch.zeros(2, dtype=torch.long)).backward()
    assert flops_per_sample(cfg, "finetune", 2) == counter.get_total_flops() // 2 > 0
    assert flops_per_sample(cfg, "pretext", 2) > cfg.N * flops_per_sample(cfg, "finetune", 2) * 0.9


def test_host_clock_frees_the_batch_before_last_in_its_timed_place():
    from fastssl.benchmarks.host import StepClock

    class Batch(dict):
        pass
    alive = []

    def stream():
        for i in range(4):
            batch = Batch(windows=i)
            alive.append(weakref.ref(batch))
            yield batch
    clock = StepClock(stream())
    held = [next(clock), next(clock)]  # the loop holds the newest batch until it takes the next
    held.pop(0)
    assert alive[0]() is not None  # the clock still holds batch 0: the loop's drop costs nothing
    held = [next(clock)]
    assert alive[0]() is None and alive[1]() is not None  # freed inside the request for batch 2
    assert len(clock.marks) == len(clock.release) == len(clock.handover) == 3


def test_host_keeps_the_clip_builder_call_but_not_its_work(coded):
    # Off CUDA the task's own model_inputs runs on the meta device: the whole call, no frame written.
    from fastssl.benchmarks.common import device_inputs
    from fastssl.benchmarks.host import HostOnly, StandIn, StepClock
    from fastssl.train.tasks import TASKS
    cfg = resolve("paper", "pretrain", data=str(coded.root), out="")
    task = HostOnly(TASKS["pretrain"], StepClock(iter(())), dataclass_replace(cfg, device="meta"))
    assert (task.command, task.kind, task.prefix) == ("pretrain", "pretext", "pretext")
    batch = device_inputs(cfg, 3)
    x, y = task.model_inputs(batch, cfg)
    assert x.device.type == "meta" and x.shape == (3 * cfg.N, 3, cfg.D, cfg.size, cfg.size)
    assert y is batch["label"] and len(task.clock.builder) == 1
    logits = StandIn(3, cfg.N)(x)
    torch.nn.functional.cross_entropy(logits, y).backward()
    assert logits.shape == (3, cfg.N) and not logits.any()


def dataclass_replace(obj, **changes):
    import dataclasses
    return dataclasses.replace(obj, **changes)


def test_evaluation_counts_every_clip_of_each_test_video(coded, tmp_path):
    from fastssl.benchmarks.runs import evaluation
    out = evaluation(spec_for(coded.root, tmp_path))
    assert out["videos"] == len(coded.test) and out["clips_per_pass"] == sum(v.frames // 8 for v in coded.test)
    assert out["metric"]["unit"] == "clips/s" and out["metric"]["median"] > 0


# ---- processes ------------------------------------------------------------------------------

def test_a_failing_component_is_reported_with_its_error(tmp_path):
    from fastssl.benchmarks.isolation import run_here
    result = run_here("model.pretext", spec_for(tmp_path / "missing", tmp_path))
    assert result["status"] == "error" and "missing" in result["error"] and result["component"] == "model.pretext"
    assert result["peak_rss_mb"] > 0 and "Traceback" in result["traceback"]


def test_a_component_past_its_time_is_killed_and_reported(tmp_path):
    from fastssl.benchmarks.isolation import spawn
    result = spawn("op.copy", spec_for(tmp_path, tmp_path, seconds=60), timeout=0.5, log_dir=tmp_path)
    assert result["status"] == "timeout" and "killed after" in result["reason"]


@pytest.mark.slow
def test_bench_runs_end_to_end_and_writes_the_json(tmp_path):
    # The smallest real run: a tiny generated dataset, the components the headline ratios, the
    # host headroom and the evaluation need, each in its own process.
    out = tmp_path / "bench.json"
    result = invoke("--quick", "--device", "cpu", "--workers", "1", "--seconds", "0.3", "--warmup", "1",
                    "--steps", "2", "--host-steps", "2", "--classes", "2", "--videos-per-class", "3", "--frames", "24",
                    "--video-size", "96x72", "--json", out,
                    "--only", "loader.pyav,loader.baseline,model.pretext,e2e.pretrain,host.finetune.pyav,eval.videos")
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["schema"] == "fastssl-bench/2"
    c = doc["components"]
    assert list(c) == ["loader.pyav", "loader.baseline", "model.pretext", "e2e.pretrain", "host.finetune.pyav",
                       "eval.videos"]  # table order
    for name in c:
        assert c[name]["status"] == "ok", (name, c[name])
        assert c[name]["peak_rss_mb"] > 50, name  # torch alone is more than that
    med = {name: c[name]["metric"]["median"] for name in c}
    for m in (c["loader.pyav"]["metric"], c["loader.baseline"]["metric"], c["model.pretext"]["steps_per_s"]):
        assert m["n"] == len(m["samples"]) >= 3  # samples are rounded to 6 digits in the JSON
        assert m["median"] == pytest.approx(np.median(m["samples"]), rel=1e-4)
    B = c["model.pretext"]["input"][0][0] // 6  # clips/s = steps/s x B questions x N clips
    assert med["model.pretext"] == pytest.approx(c["model.pretext"]["steps_per_s"]["median"] * B * 6)
    assert doc["ratios"]["loader_vs_baseline"] == pytest.approx(med["loader.pyav"] / med["loader.baseline"])
    assert doc["ratios"]["e2e_vs_model"] == pytest.approx(med["e2e.pretrain"] / med["model.pretext"])
    e2e = c["e2e.pretrain"]  # the warm-up intervals are reported apart, the rest are timed
    assert len(e2e["warmup"]) == e2e["warmup_steps"] // e2e["log_every"]
    timed = (e2e["steps"] - e2e["warmup_steps"]) // e2e["log_every"]
    assert e2e["metric"]["n"] == e2e["data_wait_fraction"]["n"] == timed
    host = c["host.finetune.pyav"]
    assert host["batch"] == 64 and host["metric"]["n"] == 2 and host["gpu_ms_per_step"] > 0
    assert host["host_vs_gpu"] == pytest.approx(med["host.finetune.pyav"] / host["gpu_ms_per_step"])
    assert doc["ratios"]["host_vs_gpu_finetune_pyav"] == pytest.approx(host["host_vs_gpu"])
    assert c["eval.videos"]["clips_per_pass"] > 0
    assert doc["machine"]["gpu"] is None and doc["dataset"]["generated"] and doc["dataset"]["videos"] == 6
    assert f"{'loader_vs_baseline':<27} {doc['ratios']['loader_vs_baseline']:8.3g}x" in result.output


@pytest.mark.slow  # ~50 s on 2 cores: torch.compile of the fine-tune model
def test_compile_measures_eager_then_compiled(coded, tmp_path):
    from fastssl.benchmarks.model import model
    out = model(spec_for(coded.root, tmp_path, warmup=1), "finetune", True)
    assert out["compile_seconds"] > 0 and out["eager"]["median"] > 0
    assert out["compiled_vs_eager"] == pytest.approx(out["metric"]["median"] / out["eager"]["median"])


@pytest.mark.slow  # a fresh interpreter, the component server's imports
def test_bench_without_any_nvidia_package_skips_dali(coded, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(NO_DALI), os.environ.get("PYTHONPATH", "")])}
    code = "import sys; from fastssl.cli_bench import bench; sys.argv = ['fastssl bench'] + sys.argv[1:]; bench()"
    out = tmp_path / "b.json"
    result = subprocess.run([sys.executable, "-c", code, "--device", "cpu", "--data", str(coded.root), "--workers", "0",
                             "--seconds", "0.2", "--warmup", "0", "--only", "op.copy,loader.dali,host.finetune.dali",
                             "--json", str(out)], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    doc = json.loads(out.read_text())
    assert doc["machine"]["dali"] is None and doc["components"]["op.copy"]["status"] == "ok"
    for name in ("loader.dali", "host.finetune.dali"):
        c = doc["components"][name]
        assert c["status"] == "skipped" and c["reason"] == "nvidia-dali is not installed", c
    assert "skip loader.dali: nvidia-dali is not installed" in result.stdout


# ---- bench/gpu_check.sh ---------------------------------------------------------------------

def gpu_check_steps() -> list[str]:
    table = GPU_CHECK.read_text().split('STEPS="', 1)[1].split('"', 1)[0]
    return [line.split()[0] for line in table.splitlines() if line.strip() and not line.startswith("#")]


def run_gpu_check(out, **env):
    result = subprocess.run(["bash", str(GPU_CHECK), str(out)], env={**os.environ, **env}, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(len(p.relative_to(out).parts) <= 3 for p in out.rglob("*"))
    summary = (out / "summary.txt").read_text().splitlines()
    status = {}
    for name in gpu_check_steps():  # every step is reported, in rank order
        line = next(line for line in summary if line.startswith(f"{name} ") and line[len(name):][:1] == " ")
        status[name] = line[len(name):].strip()
    assert [n for n in gpu_check_steps()] == sorted(status, key=lambda n: next(
        i for i, line in enumerate(summary) if line.startswith(f"{n} ")))
    return status, files


def test_gpu_check_ranks_its_steps_and_skips_the_lowest_when_time_runs_out(tmp_path):
    steps = gpu_check_steps()
    assert steps[:5] == ["env", "torch", "dali", "nvdec", "synth"]  # setup that every later step needs
    assert steps.index("syncdebug") < steps.index("bench") < steps.index("compile") < steps.index("eval")
    assert steps[5] == "syncdebug"
    # Every Python step takes 2 s and fails: 22 s (15 kept back to pack the results) fits only the first.
    slow_python = tmp_path / "python"
    slow_python.write_text("#!/bin/sh\nsleep 2\necho 'no such module' >&2\nexit 1\n")
    slow_python.chmod(0o755)
    status, files = run_gpu_check(tmp_path / "out", PYTHON=str(slow_python), GPU_CHECK_S="22")
    assert status["env"].startswith("FAILED")  # a failure is reported, not hidden
    skipped = [n for n in steps if status[n].startswith("skipped: time budget spent")]
    assert skipped and skipped == steps[steps.index(skipped[0]):]  # once time runs out, every lower rank skips
    assert sorted(p.name for p in files) == ["logs.tar.gz", "summary.txt"]
    assert "no such module" in (tmp_path / "out" / "summary.txt").read_text()  # the failing step's tail


@pytest.mark.slow
def test_gpu_check_dry_run_on_a_cpu(tmp_path):
    # Every step runs (the bench as a plumbing check) or says why it skipped; nothing claims a GPU.
    status, files = run_gpu_check(tmp_path / "out", PYTHON=sys.executable, GPU_CHECK_S="300")
    assert status["env"].startswith("ok") and status["bench"].startswith("ok") and status["torch"].startswith("NO GPU")
    for name in ("syncdebug", "compile", "eval", "pytest", "torchrun", "determinism"):
        assert status[name].startswith("skipped"), (name, status[name])
    assert sorted(p.name for p in files) == ["bench.json", "logs.tar.gz", "summary.txt"]
    with tarfile.open(tmp_path / "out" / "logs.tar.gz") as tar:
        logs = sorted(Path(n).name for n in tar.getnames() if n.endswith(".log"))
    assert logs == [f"{i:02d}-{name}.log" for i, name in enumerate(gpu_check_steps(), 1)]
    assert json.loads((tmp_path / "out" / "bench.json").read_text())["components"]["op.copy"]["status"] == "ok"


# ---- data parallel: the real pretrain command under torchrun, 1 and 2 processes ----------------

def test_dp_components_launch_the_real_command_and_split_the_global_batch():
    from fastssl.benchmarks import runs
    assert runs.global_batch(16, 2) == 16 and runs.global_batch(17, 2) == 16 and runs.global_batch(64, 3) == 63
    with pytest.raises(ValueError, match="2 each"):
        runs.global_batch(3, 2)
    spec = {"data": "/d", "preset": "tiny", "device": "cpu", "precision": "fp32", "resize": [72, 96]}
    line = runs.launch_line(spec, 2, out="/o", batch=8, steps=7, log_every=1, workers=0, loader="pyav")
    assert line[:6] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    assert line[6:9] == ["-m", "fastssl", "pretrain"]
    assert line[line.index("--batch-size") + 1] == "8" and line[line.index("--resize") + 1] == "72x96"
    assert "--force" in line and "--size" not in line
    assert REGISTRY["dp.1"].needs == () and applicability("dp.2", "cpu", set()) is None


@pytest.mark.slow  # ~40-60 s on 2 cores: two torchrun launches of the real pretrain command
def test_bench_dp_section_runs_one_and_two_processes(tmp_path):
    out = tmp_path / "bench.json"
    result = invoke("--device", "cpu", "--only", "dp", "--workers", "0", "--batch-size", "4", "--steps", "2",
                    "--classes", "2", "--videos-per-class", "3", "--frames", "24", "--video-size", "96x72",
                    "--time-budget", "400", "--json", out)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    c = doc["components"]
    assert list(c) == ["dp.1", "dp.2"]
    cores = doc["machine"]["cpu_cores_usable"]
    for name, ranks in (("dp.1", 1), ("dp.2", 2)):
        d = c[name]
        assert d["status"] == "ok", (name, d.get("error"), d.get("traceback"))
        assert d["ranks"] == ranks and d["backend"] == "gloo" and d["exit_status"] == 0
        assert d["global_batch"] == 4 and d["per_rank_batch"] == 4 // ranks  # the same global batch
        assert d["threads_per_rank"] == max(1, cores // ranks)
        assert f"--nproc-per-node {ranks} -m fastssl pretrain" in d["launch"]
        assert d["metric"]["unit"] == "clips/s" and d["metric"]["median"] > 0
        assert d["metric"]["n"] == (d["steps"] - d["warmup_steps"]) // d["log_every"] == 2
        assert len(d["warmup"]) == d["warmup_steps"] // d["log_every"]
    assert "data_wait_fraction_max" in c["dp.2"]  # reduced over ranks: mean and max
    ratio = doc["ratios"]["dp_2_vs_1"]
    assert ratio == pytest.approx(c["dp.2"]["metric"]["median"] / c["dp.1"]["metric"]["median"])
    assert doc["ratio_details"]["dp_2_efficiency"] == pytest.approx(ratio / 2)
