"""Between two log points neither training loop makes a call that would make a CUDA host wait
(tests/host_waits.py says what counts), with either loader and either task. Run on the CPU with
CUDA's defaults where a check is CPU-only: build_clips validates its index range only for CPU
tensors (on CUDA that would read the indices back every step), so here it is told to skip it."""
import pytest

from fastssl.data import loaders
from fastssl.train.run import run
from fastssl.train.run_setup import setup_training
from fastssl.train.tasks import TASKS, Pretext
from host_waits import CountingStream, HostWaitAudit
from videos import make_coded_dataset

STEPS = 6


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("waits")
    sets = {"pyav": make_coded_dataset(root / "h264", frames=(24, 30, 30))}
    if loaders.dali_available():
        sets["dali"] = make_coded_dataset(root / "vp9", frames=(24, 30, 30), codec="vp9")
    return sets


@pytest.fixture
def cuda_defaults(monkeypatch):
    import importlib
    kernel = importlib.import_module("fastssl.kernels.build_clips")
    monkeypatch.setattr(kernel, "_resolve_check", lambda check, device: bool(check))


def audited(task, audit):
    class Audited(type(task)):
        def stream(self, cfg, plan, *, start_step, dist):
            return CountingStream(super().stream(cfg, plan, start_step=start_step, dist=dist), audit)
    return Audited()


def train(task, data, out, loader, audit):
    extra = dict(W=12, N=3) if task.command == "pretrain" else dict(eval_every=STEPS)
    setup = setup_training(task.command, data=str(data), out=str(out), loader=loader, workers=2 if loader == "pyav" else 1,
                           steps=STEPS, batch_size=4, log_every=STEPS, ckpt_every=STEPS, report=lambda _: None,
                           **extra)
    with audit:
        run(audited(task, audit), setup, progress=False, report=lambda _: None)


@pytest.mark.parametrize("loader", ["pyav", "dali"])
@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_no_host_wait_between_log_points(datasets, tmp_path, cuda_defaults, loader, command):
    if loader not in datasets:
        pytest.skip("DALI is not installed")
    audit = HostWaitAudit()
    train(TASKS[command], datasets[loader], tmp_path / "run", loader, audit)
    assert audit.step == STEPS
    # steps 1..STEPS-1 are between log points; step STEPS logs, checkpoints and scores
    assert audit.between(1, STEPS - 1) == []
    assert audit.between(STEPS, STEPS), "the audit saw nothing at the log point: is it counting?"


def test_the_audit_catches_a_planted_item_in_the_loop(datasets, tmp_path, cuda_defaults):
    class Planted(Pretext):
        def model_inputs(self, batch, cfg):
            x, y = super().model_inputs(batch, cfg)
            y.sum().item()  # the kind of call that makes a CUDA host wait every step
            return x, y
    audit = HostWaitAudit()
    audit.roots.append(__file__)
    train(Planted(), datasets["pyav"], tmp_path / "run", "pyav", audit)
    planted = audit.between(1, STEPS - 1)
    assert [c[1] for c in planted] == ["item"] * (STEPS - 1)
    assert all(c[2].startswith(__file__) for c in planted)
