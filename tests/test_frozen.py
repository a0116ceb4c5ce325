"""Frozen-feature evaluation: retrieval and the linear probe on known features, then the whole
path (decoded clips -> conv features -> scores -> eval.json) on small encoded datasets."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from fastssl.cli import main
from fastssl.config import resolve
from fastssl.data.dataset import load_dataset, write_index, write_splits, write_stamp
from fastssl.data.encode import write_video
from fastssl.models.build import build_classifier, build_siamese
from fastssl.train.checkpoints import read_checkpoint, save_checkpoint
from fastssl.train.frozen import (PROBE_ITERATIONS, PROBE_L2, RETRIEVAL_K, checkpoint_features,
                                  clip_features, fit_probe,
                                  frozen_scores, probe_hits, random_features, retrieval_hits)

D = 8
# class -> flat RGB colour: clips of one class look alike and unlike the others', so even random
# conv features separate the classes
COLOURS = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}
TRAIN_FRAMES = (16, 17, 16)   # 2 clips of 8 frames each: a partial clip is dropped
TEST_FRAMES = (16,)


def make_colour_dataset(root, *, colours=COLOURS, train=TRAIN_FRAMES, test=TEST_FRAMES, width=96, height=72):
    """UCF101 layout; every video a class's colour, a little brighter per video and moving
    noise per frame, so no two videos (or clips) are identical."""
    rng = np.random.default_rng(0)
    rows, train_list, test_list = [], [], []
    for c, colour in colours.items():
        (root / "videos" / c).mkdir(parents=True, exist_ok=True)
        for g, n in enumerate(test + train, 1):
            rel = f"{c}/v_{c}_g{g:02d}_c01.mp4"
            base = np.clip(np.array(colour) + 6 * g, 0, 255)
            frames = (np.clip(base + rng.integers(-12, 13, (height, width, 3)), 0, 255).astype(np.uint8)
                      for _ in range(n))
            write_video(root / "videos" / rel, frames, fps=25, codec="h264", gop=8)
            rows.append(dict(path="videos/" + rel, frames=n, fps=25, codec="h264", width=width,
                             height=height, **{"class": c}))
            (test_list if g <= len(test) else train_list).append(rel)
    write_index(root, rows)
    write_splits(root, list(colours), train_list, test_list)
    return root


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    return str(make_colour_dataset(tmp_path_factory.mktemp("colours")))


def config(data, **kw):
    return resolve("tiny", "evaluate", data=data, out="", device="cpu", precision="fp32", loader="pyav",
                   workers=0, **kw)


def clips_of(videos):
    return sum(v.frames // D for v in videos)


# --- retrieval and probe on known features -------------------------------------------------------

def unit(x):
    return F.normalize(torch.as_tensor(x, dtype=torch.float32), dim=1)


def test_retrieval_counts_a_hit_when_any_of_the_k_nearest_has_the_class():
    keys = unit([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]])
    key_labels = torch.tensor([0, 1, 1, 2])
    # query 0 is nearest key 0 (class 0: hit at k=1); query 1 is nearest key 0 then key 1 (class 1:
    # hit from k=2); query 2 is class 3, which no key has (never a hit)
    queries = unit([[1, 0], [0.95, 0.05], [0, 1]])
    hits = retrieval_hits(queries, torch.tensor([0, 1, 3]), keys, key_labels, ks=(1, 2, 3, 4, 50))
    assert hits.tolist() == [1, 2, 2, 2, 2]  # k=50 is capped at the 4 keys


def gaussian_clusters(n, classes, dim, spread, seed, labels=None):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(99)) * 3
    y = torch.randint(classes, (n,), generator=g) if labels is None else labels
    return unit(centres[y] + spread * torch.randn(n, dim, generator=g)), y


def test_separable_features_score_one_and_random_labels_score_chance():
    classes = 5
    train_x, train_y = gaussian_clusters(1500, classes, 16, 0.3, seed=1)
    test_x, test_y = gaussian_clusters(1000, classes, 16, 0.3, seed=2)
    assert retrieval_hits(test_x, test_y, train_x, train_y, ks=(1,)).item() == len(test_x)
    probe = fit_probe(train_x, train_y, classes)
    clips, _ = probe_hits(probe, test_x, test_y, torch.arange(len(test_x)), test_y)
    assert clips.item() == len(test_x)
    # the same features with labels drawn independently of them: nothing to learn, so both scores
    # sit at chance (0.2; one standard deviation over 1000 queries is 0.013)
    g = torch.Generator().manual_seed(3)
    random_train = torch.randint(classes, (len(train_x),), generator=g)
    random_test = torch.randint(classes, (len(test_x),), generator=g)
    top1 = retrieval_hits(test_x, random_test, train_x, random_train, ks=(1,)).item() / len(test_x)
    probe = fit_probe(train_x, random_train, classes)
    clips, _ = probe_hits(probe, test_x, random_test, torch.arange(len(test_x)), random_test)
    assert abs(top1 - 0.2) < 0.05
    assert abs(clips.item() / len(test_x) - 0.2) < 0.05


def test_top_k_is_monotone_and_reaches_one_when_k_covers_every_training_clip():
    train_x, train_y = gaussian_clusters(40, 4, 8, 2.0, seed=4)  # overlapping classes
    test_x, test_y = gaussian_clusters(300, 4, 8, 2.0, seed=5)
    assert set(test_y.tolist()) <= set(train_y.tolist())
    hits = retrieval_hits(test_x, test_y, train_x, train_y, ks=RETRIEVAL_K + (40, 1000)).tolist()
    assert hits == sorted(hits) and hits[0] < len(test_x)
    assert hits[-2] == hits[-1] == len(test_x)


def test_the_probe_is_deterministic_and_regularised():
    x, y = gaussian_clusters(500, 3, 12, 0.5, seed=6)
    a, b = fit_probe(x, y, 3), fit_probe(x, y, 3)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    # separable data: without the L2 term the weights would grow without bound; with it they
    # stay finite (the optimum is where the data's pull balances PROBE_L2)
    assert torch.isfinite(a.weight).all() and a.weight.abs().max() < 1e4
    # a dimension that is constant over the training clips carries no information: weight 0,
    # so a test clip that differs there is classified as if it did not
    x_const = torch.cat([x, torch.full((len(x), 1), 0.5)], 1)
    probe = fit_probe(x_const, y, 3)
    assert torch.all(probe.weight[:, -1] == 0)
    assert PROBE_ITERATIONS > 0 and 0 < PROBE_L2 < 1


def test_video_accuracy_is_the_argmax_of_the_mean_softmax():
    # identity probe: each clip's features are its logits
    probe = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        probe.weight.copy_(torch.eye(2))
    # video 0 (class 0): one confident clip for 0, two mild ones for 1. Most clips say 1, but the
    # mean softmax says 0 (1 + 0.27 + 0.27 vs 0 + 0.73 + 0.73)
    x = torch.tensor([[10.0, 0], [0, 1], [0, 1], [0, 3]])
    clips, videos = probe_hits(probe, x, torch.tensor([0, 0, 0, 1]), torch.tensor([0, 0, 0, 1]),
                               torch.tensor([0, 1]))
    assert clips.item() == 2 and videos.item() == 2


# --- the whole path on encoded videos ------------------------------------------------------------

def test_colour_classes_are_found_by_random_features(colours):
    cfg = config(colours, batch_size=4)
    dataset = load_dataset(colours)
    features = random_features(cfg, seed=0)
    features.train()
    running = [b.clone() for b in features.buffers()]
    scores = frozen_scores(features, cfg, dataset, progress=False)
    # scored in eval mode (BatchNorm statistics untouched), handed back in the mode it came in
    assert features.training
    assert all(torch.equal(a, b) for a, b in zip(running, features.buffers()))
    assert set(scores) == {"retrieval_top1", "retrieval_top5", "retrieval_top10", "retrieval_top20",
                           "retrieval_top50", "probe_clip_accuracy", "probe_video_accuracy",
                           "train_clips", "test_clips", "chance"}
    assert scores["train_clips"] == clips_of(dataset.train) == 3 * 6
    assert scores["test_clips"] == clips_of(dataset.test) == 3 * 2
    assert scores["chance"] == pytest.approx(1 / 3)
    assert scores["retrieval_top1"] == scores["probe_clip_accuracy"] == scores["probe_video_accuracy"] == 1.0
    assert scores["retrieval_top50"] == 1.0  # capped at the 18 training clips


def test_batch_size_does_not_change_features_or_scores(colours):
    # forward batches gather clips across videos: rows must still land with their video
    dataset = load_dataset(colours)
    features = random_features(config(colours), seed=1)
    by_batch = {b: clip_features(features, config(colours, batch_size=b), dataset.test, progress=False)
                for b in (1, 3, 64)}
    x1, v1 = by_batch[1]
    assert v1.tolist() == [i for i, v in enumerate(dataset.test) for _ in range(v.frames // D)]
    assert torch.allclose(x1.norm(dim=1), torch.ones(len(x1)), atol=1e-5)
    for x, video in by_batch.values():
        assert torch.equal(video, v1) and torch.allclose(x, x1, atol=1e-5)
    a, b = (frozen_scores(features, config(colours, batch_size=n), dataset, progress=False) for n in (3, 64))
    assert a == pytest.approx(b, abs=1e-6)


def test_random_features_are_seeded_and_leave_the_global_rng_alone(colours):
    cfg = config(colours)
    state = torch.get_rng_state()
    a, b, c = random_features(cfg, 3), random_features(cfg, 3), random_features(cfg, 4)
    assert torch.equal(torch.get_rng_state(), state)
    wa, wb, wc = (m[0].weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert wa.is_contiguous(memory_format=torch.channels_last_3d)


# --- the command line ----------------------------------------------------------------------------

def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def checkpoint(path, kind, data, seed):
    """A real checkpoint of a freshly initialised model of either kind (training it would only
    change the numbers)."""
    dataset = load_dataset(data)
    cfg = resolve("tiny", "pretrain" if kind == "pretext" else "finetune", data=data, out=str(path.parent),
                  device="cpu", precision="fp32", loader="pyav", workers=0, batch_size=4)
    torch.manual_seed(seed)
    model = build_siamese(cfg) if kind == "pretext" else build_classifier(cfg, dataset.num_classes)
    for m in model.features.modules():  # as if trained: statistics a fresh init would not have
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    extra = {} if kind == "pretext" else {"classes": "\n".join(dataset.classes)}
    save_checkpoint(path, kind=kind, model=model, cfg=cfg, step=7, **extra)
    return model


@pytest.mark.parametrize("kind", ["pretext", "classifier"])
def test_evaluate_frozen_scores_a_checkpoints_conv_features(colours, tmp_path, kind):
    model = checkpoint(tmp_path / "checkpoint.pt", kind, colours, seed=5)
    result = run("evaluate", "--frozen", "--checkpoint", tmp_path / "checkpoint.pt", "--data", colours,
                 "--device", "cpu", "--workers", "0", "--batch-size", "6", "--out", tmp_path / "e")
    assert result.exit_code == 0, result.output
    assert f"frozen features ({kind} checkpoint): retrieval top-1 1.000  top-5 1.000" in result.output
    saved = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert saved["kind"] == "frozen" and saved["checkpoint_kind"] == kind and saved["step"] == 7
    assert saved["checkpoint"] == str(tmp_path / "checkpoint.pt") and saved["split"] == 1
    # the checkpoint's own conv layers were scored: the model's BatchNorm running statistics are
    # not those of a fresh init, so a loading slip would change the numbers
    ckpt_features = checkpoint_features(read_checkpoint(tmp_path / "checkpoint.pt"), config(colours))
    assert all(torch.equal(a, b) for a, b in zip(ckpt_features.state_dict().values(),
                                                 model.features.state_dict().values()))
    if kind == "pretext":  # the same path as frozen_scores, so once is enough
        direct = frozen_scores(model.features, config(colours, batch_size=6), load_dataset(colours),
                               progress=False)
        assert {k: saved[k] for k in direct} == pytest.approx(direct, abs=1e-6)


def test_evaluate_frozen_refusals(colours, tmp_path):
    checkpoint(tmp_path / "c.pt", "classifier", colours, seed=0)
    both = run("evaluate", "--frozen", "--shuffle-frames", "1", "--checkpoint", tmp_path / "c.pt",
               "--data", colours, "--device", "cpu", "--out", tmp_path / "e")
    assert both.exit_code == 2 and "--frozen" in both.output and "--shuffle-frames" in both.output
    unlabelled = make_colour_dataset(tmp_path / "u", colours={"all": (90, 90, 90)})
    write_stamp(unlabelled, "prepare", unlabelled=True)
    refused = run("evaluate", "--frozen", "--checkpoint", tmp_path / "c.pt", "--data", unlabelled,
                  "--device", "cpu", "--out", tmp_path / "e")
    assert refused.exit_code == 2 and "--frozen" in refused.output and "unlabelled" in refused.output
    # the training split is read too, so its videos are checked before any work
    short = make_colour_dataset(tmp_path / "s", train=(16, 5))
    too_short = run("evaluate", "--frozen", "--checkpoint", tmp_path / "c.pt", "--data", short,
                    "--device", "cpu", "--out", tmp_path / "e")
    assert too_short.exit_code == 2 and "g03_c01.mp4: 5 frames" in too_short.output
    assert "train split" in too_short.output
    assert not (tmp_path / "e").exists()


def test_evaluate_help_describes_frozen_scores():
    text = " ".join(run("evaluate", "--help").output.split())
    for said in ("--frozen", "cosine", "L2-normalised", "non-overlapping", "L-BFGS",
                 f"L2 {PROBE_L2:g}", f"{PROBE_ITERATIONS} iterations", "top-k"):
        assert said in text, said


@pytest.mark.slow
def test_synth_pretrain_then_evaluate_frozen(tmp_path):
    data = tmp_path / "synth"
    assert run("synth", data, "--classes", "2", "--videos-per-class", "3", "--frames", "24",
               "--size", "96x72").exit_code == 0
    pre = run("pretrain", "--data", data, "--out", tmp_path / "p", "--device", "cpu", "--workers", "0",
              "--steps", "2", "--batch-size", "2", "--window", "12", "--clips", "3")
    assert pre.exit_code == 0, pre.output
    ev = run("evaluate", "--frozen", "--checkpoint", tmp_path / "p" / "checkpoint.pt", "--data", data,
             "--device", "cpu", "--workers", "0", "--out", tmp_path / "e")
    assert ev.exit_code == 0, ev.output
    saved = json.loads((tmp_path / "e" / "eval.json").read_text())
    dataset = load_dataset(data)
    assert saved["train_clips"] == clips_of(dataset.train) and saved["test_clips"] == clips_of(dataset.test)
    assert 0 <= saved["retrieval_top1"] <= saved["retrieval_top5"] <= saved["retrieval_top50"] == 1.0
