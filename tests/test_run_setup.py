"""Run setup: each impossible value is refused before any work, blamed on its option; what the
setup loads (dataset, initial weights, the checkpoint to resume) it loads once."""
import pytest
import torch

from fastssl.train.checkpoints import CheckpointWriter
from fastssl.train.run_setup import (SetupError, build_config, default_workers, setup_evaluation,
                                     setup_resume, setup_training)
from videos import make_coded_dataset

QUIET = dict(report=lambda _: None)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return str(make_coded_dataset(tmp_path_factory.mktemp("setup"), frames=(24, 30, 30)))


@pytest.mark.parametrize("options,flag,words", [
    (dict(preset="huge"), "--preset", "choose from"),
    (dict(steps=3, epochs=1.0), None, "not both"),
    (dict(mode="xx"), "--mode", "choose from"),
    (dict(batch_size=3, accumulate=2), "--batch-size", "divide by ranks x --accumulate"),
    (dict(batch_size=2, accumulate=2), "--batch-size", "at least 2 per rank and micro-batch"),
    (dict(D=6), "--clip-length", "at least 8 frames"),
    (dict(size=128), "--size", "larger than the frames"),
    (dict(device="tpu"), "--device", "choose from"),
    (dict(precision="fp8"), "--precision", "choose from"),
    (dict(sync_bn=True), "--sync-bn", "CUDA only"),
])
def test_impossible_values_are_blamed_on_their_option(data, options, flag, words):
    with pytest.raises(SetupError) as e:
        build_config("pretrain", data=data, **QUIET, **options)
    assert e.value.option == flag and words in str(e.value)


def test_a_missing_dataset_is_blamed_on_data(tmp_path):
    with pytest.raises(SetupError) as e:
        setup_training("pretrain", data=str(tmp_path / "none"), out=str(tmp_path / "o"), **QUIET)
    assert e.value.option == "--data"


def test_init_is_read_once_into_initial_weights(data, tmp_path):
    pre = setup_training("pretrain", data=data, out=str(tmp_path / "p"), W=12, N=3, **QUIET)
    assert pre.init is None and pre.resume is None and not pre.finished
    from fastssl.models import build_siamese
    torch.manual_seed(3)
    model = build_siamese(pre.cfg)
    CheckpointWriter(tmp_path / "p").save(1, kind="pretext", model=model, cfg=pre.cfg)
    ft = setup_training("finetune", data=data, out=str(tmp_path / "f"), init=str(tmp_path / "p" / "checkpoint.pt"),
                        **QUIET)
    assert "pretext checkpoint" in ft.init.source
    assert set(ft.init.features) == set(model.features.state_dict())
    assert all(torch.equal(ft.init.features[k], v) for k, v in model.features.state_dict().items())
    with pytest.raises(SetupError) as e:
        setup_training("finetune", data=data, out=str(tmp_path / "g"), init=str(tmp_path / "p" / "checkpoint.pt"),
                       width=0.5, **QUIET)
    assert e.value.option == "--init" and "width=0.25 (here 0.5)" in str(e.value)


def test_resume_needs_a_run_folder_of_the_same_command_with_a_checkpoint(data, tmp_path):
    with pytest.raises(SetupError, match="no config.json"):
        setup_resume("pretrain", str(tmp_path / "nothing"), **QUIET)
    pre = setup_training("pretrain", data=data, out=str(tmp_path / "p"), W=12, N=3, steps=4, **QUIET)
    pre.cfg.dump((tmp_path / "p").mkdir() or tmp_path / "p")
    with pytest.raises(SetupError, match="has no checkpoint yet"):
        setup_resume("pretrain", str(tmp_path / "p"), **QUIET)
    with pytest.raises(SetupError, match="is a `fastssl pretrain` run"):
        setup_resume("finetune", str(tmp_path / "p"), **QUIET)
    from fastssl.models import build_siamese
    CheckpointWriter(tmp_path / "p").save(4, kind="pretext", model=build_siamese(pre.cfg), cfg=pre.cfg)
    resumed = setup_resume("pretrain", str(tmp_path / "p"), **QUIET)
    # at the last step but never scored (killed before its held-out questions): not finished
    assert resumed.resume.step == 4 and not resumed.finished
    (tmp_path / "p" / "scores.json").write_text('{"steps": 4}')
    assert setup_resume("pretrain", str(tmp_path / "p"), **QUIET).finished
    with pytest.raises(SetupError) as e:
        setup_resume("pretrain", str(tmp_path / "p"), steps=3, **QUIET)
    assert e.value.option == "--steps"


def test_evaluating_on_a_dataset_with_other_classes_names_both(data, tmp_path):
    other = str(make_coded_dataset(tmp_path / "other", frames=(24, 30, 30), classes=("C", "D", "E")))
    setup = setup_training("finetune", data=data, out=str(tmp_path / "f"), **QUIET)
    from fastssl.models import build_classifier
    model = build_classifier(setup.cfg, 2)
    CheckpointWriter(tmp_path / "f").save(1, kind="classifier", model=model, cfg=setup.cfg, classes="A\nB")
    with pytest.raises(SetupError) as e:
        setup_evaluation(str(tmp_path / "f" / "checkpoint.pt"), data=other, out=str(tmp_path / "e"), **QUIET)
    assert e.value.option == "--data"
    assert "trained on 2 classes A, B" in str(e.value) and "has 3: C, D, E" in str(e.value)


def test_default_workers_use_the_host_on_a_gpu_and_spare_the_model_on_a_cpu(monkeypatch):
    import os
    cores = len(os.sched_getaffinity(0))
    assert default_workers("cpu") == min(4, cores)
    assert default_workers("cuda") == max(1, cores - 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert default_workers("cuda:1") == max(1, cores // 2 - 1)
