"""One function per measured component. Each takes a spec (a plain dict, see `runner.py`) and
returns a JSON-able dict whose "metric" entry is the headline summary (median, quartiles, ...).

Every component runs in a process of its own (`run_component.py`), so imports, threads and peak
memory of one never leak into the next. All of them use the same config (preset + overrides),
the same dataset and, where they read videos, the same `PretextPlan` and key stream, hence the
same windows, crops, flips and questions.
"""
from __future__ import annotations

import dataclasses
import gc
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from fastssl.benchmarks.stats import measure, rate_stats, scaled, summarize
from fastssl.config import Config, resolve

# --------------------------------------------------------------------------------------------
# shared plumbing
# --------------------------------------------------------------------------------------------


def config(spec: dict, command: str = "pretrain", **extra) -> Config:
    values = {k: spec.get(k) for k in ("size", "width", "batch_size")}
    if spec.get("resize"):
        values["resize"] = tuple(spec["resize"])
    values.update(data=spec["data"], out=spec.get("out", ""), device=spec["device"],
                  precision=spec["precision"], mode=spec.get("mode", "rp"), workers=spec["workers"],
                  decoders=spec.get("decoders", 1), seed=spec.get("seed", 0), loader="pyav")
    values.update(extra)
    return resolve(spec["preset"], command, **values)


def sync(device: str) -> None:
    # Work on a GPU is asynchronous: without this a timer measures only the launch.
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _deadline(spec: dict) -> float | None:
    return spec.get("_deadline")


def _measure(spec: dict, step, *, warmup: int | None = None) -> list[tuple[float, float]]:
    return measure(step, warmup=spec.get("warmup", 2) if warmup is None else warmup,
                   seconds=spec.get("seconds", 5.0), min_samples=spec.get("min_samples", 3),
                   deadline=_deadline(spec))


def _videos(cfg: Config, loader: str, min_frames: int, notes: list):
    """The train split, checked as the CLI checks it (DALI: every file probed up front)."""
    from fastssl.data import loaders
    from fastssl.data.dataset import check_videos, load_dataset

    dataset = load_dataset(cfg.data)
    train = check_videos(dataset.train, min_frames, skip=True, what="bench", report=notes.append)
    train = loaders.validate_files(loader, train, device=cfg.device, min_frames=min_frames, skip=True,
                                   report=notes.append)
    return dataset, train


def _plan(cfg: Config, videos):
    from fastssl.data.sampling import PretextPlan
    from fastssl.train.pretrain import geometry
    return PretextPlan(videos, W=cfg.W, D=cfg.D, N=cfg.N, mode=cfg.mode, geometry=geometry(cfg),
                       seed=cfg.seed, train=True)


def _close(it) -> None:
    """Stop a loader's workers/pipelines now (and reap worker processes, so their peak RSS is
    counted in RUSAGE_CHILDREN)."""
    for name in ("close", "_shutdown_workers"):
        fn = getattr(it, name, None)
        if fn is not None:
            try:
                fn()
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass
    gc.collect()


def _windows_questions(cfg: Config, device: str, batch: int, seed: int = 0):
    """Random uint8 windows and real questions, already on the device (the model-only input)."""
    from fastssl.pretext import sample_questions
    g = torch.Generator().manual_seed(seed)
    windows = torch.randint(0, 256, (batch, cfg.W, cfg.size, cfg.size, 3), dtype=torch.uint8, generator=g)
    q = sample_questions(batch, cfg.W, cfg.D, cfg.N, cfg.mode, np.random.default_rng(seed))
    return (windows.to(device), torch.from_numpy(q.starts).to(device), torch.from_numpy(q.orders).to(device),
            torch.from_numpy(q.label).to(device))


# --------------------------------------------------------------------------------------------
# loader-only: questions/s delivered as normalized clips on the device, nothing else
# --------------------------------------------------------------------------------------------


def loader(spec: dict, which: str) -> dict:
    """`which` = pyav | dali | baseline. One sample = one block of batches; a block is one batch
    per worker, because DataLoader workers each build whole batches and deliver them in bursts."""
    from fastssl.benchmarks import baseline
    from fastssl.data import loaders
    from fastssl.train.pretrain import question_clips

    cfg = config(spec, "pretrain", loader="pyav" if which == "baseline" else which)
    notes: list[str] = []
    _, videos = _videos(cfg, cfg.loader, cfg.W, notes)
    plan = _plan(cfg, videos)
    B, s = cfg.batch_size, cfg.size
    if which == "baseline":
        it = baseline.pretext_batches(plan, B, workers=cfg.workers, device=cfg.device, mean=cfg.mean,
                                      std=cfg.std)

        def consume(batch):
            return baseline.to_device(batch, cfg.device)
        handed = cfg.N * cfg.D * s * s * 3 * 4              # float32 clips per question
    else:
        it = loaders.pretext_batches(which, plan, B, workers=cfg.workers, device=cfg.device,
                                     decoders=cfg.decoders)

        def consume(batch):
            return question_clips(batch, cfg)
        handed = cfg.W * s * s * 3                        # uint8 window per question
    block = max(1, cfg.workers) if which != "dali" else 1
    shapes = {}

    def step():
        for _ in range(block):
            x, y = consume(next(it))
        sync(cfg.device)
        shapes["clips"] = [list(x.shape), str(x.dtype), str(x.device)]
        return block * B

    try:
        samples = _measure(spec, step)
    finally:
        _close(it)
    q = rate_stats(samples, "questions/s")
    return {"metric": q, "clips_per_s": scaled(q, cfg.N, "clips/s"),
            "frames_decoded_per_s": scaled(q, cfg.W, "frames/s"),
            "batches_per_sample": block, "batch_size": B, "workers": cfg.workers,
            "decoders": cfg.decoders if which == "dali" else None,
            "bytes_handed_over_per_question": handed, "output": shapes.get("clips"),
            "videos": len(videos), "notes": notes}


# --------------------------------------------------------------------------------------------
# model-only: training steps on clips already on the device (the ceiling)
# --------------------------------------------------------------------------------------------


def _count_flops(step) -> int | None:
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def model(spec: dict, which: str) -> dict:
    """`which` = pretext (SiameseNet on B questions x N clips) | finetune (AlexNet3D on B clips)."""
    import torch.nn.functional as F

    from fastssl.data.dataset import load_dataset
    from fastssl.kernels import build_clips
    from fastssl.train.common import autocast, input_dtype, seed_everything
    from fastssl.train.finetune import build_classifier
    from fastssl.train.pretrain import build_siamese

    command = "pretrain" if which == "pretext" else "finetune"
    cfg = config(spec, command)
    dev = cfg.device
    seed_everything(cfg.seed)
    B = cfg.batch_size
    windows, starts, orders, labels = _windows_questions(cfg, dev, B)
    if which == "pretext":
        net = build_siamese(cfg)
        x = build_clips(windows, starts, orders, mean=cfg.mean, std=cfg.std, dtype=input_dtype(cfg))
        y = labels
        per_step = {"questions": B, "clips": B * cfg.N}
    else:
        classes = load_dataset(cfg.data).num_classes
        net = build_classifier(cfg, classes)
        one = torch.zeros_like(starts[:, :1])
        ident = torch.arange(cfg.D, device=dev).expand(B, 1, cfg.D).contiguous()
        x = build_clips(windows[:, :cfg.D].contiguous(), one, ident, mean=cfg.mean, std=cfg.std,
                        dtype=input_dtype(cfg))
        y = labels % classes
        per_step = {"clips": B}
    del windows
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    net.train()

    def forward_backward():
        optimizer.zero_grad(set_to_none=True)
        with autocast(cfg):
            logits = net(x)
        loss = F.cross_entropy(logits.float(), y)
        loss.backward()

    def step():
        forward_backward()
        optimizer.step()
        sync(dev)
        return 1

    for _ in range(max(1, spec.get("warmup", 2))):
        step()
    flops = _count_flops(forward_backward)  # forward + backward of one step; Adam is not counted
    samples = _measure(spec, step, warmup=0)
    steps = rate_stats(samples, "steps/s")
    out = {"metric": scaled(steps, per_step["clips"], "clips/s"), "steps_per_s": steps,
           "input": [list(x.shape), str(x.dtype)], "precision": cfg.precision,
           "flops_per_step": flops, "params": sum(p.numel() for p in net.parameters()), "notes": []}
    if "questions" in per_step:
        out["questions_per_s"] = scaled(steps, per_step["questions"], "questions/s")
    if flops:
        out["tflops"] = scaled(steps, flops / 1e12, "TFLOP/s")
        if not dev.startswith("cuda"):
            out["notes"].append("TFLOP/s on the CPU is for reference (fp32, no tensor cores)")
    return out


# --------------------------------------------------------------------------------------------
# end to end: the real loops, for a fixed number of steps
# --------------------------------------------------------------------------------------------


def e2e(spec: dict, which: str) -> dict:
    """Runs fastssl.train.pretrain.pretrain / finetune.finetune unchanged and reads the
    `clips_per_s` and `data_wait_fraction` they log to metrics.jsonl. The first logging interval
    holds the loader's start-up (workers forking, pipelines building), so it is dropped."""
    from fastssl.data.dataset import check_videos, load_dataset
    from fastssl.data import loaders

    command = "pretrain" if which == "pretrain" else "finetune"
    steps = int(spec.get("steps", 20))
    log_every = max(1, steps // 5)
    run_dir = Path(spec["workdir"]) / f"e2e-{which}"
    cfg = config(spec, command, loader=spec.get("e2e_loader", "pyav"), steps=steps, log_every=log_every,
                 ckpt_every=10**9, eval_questions=1)
    cfg.out = str(run_dir)
    notes: list[str] = []
    dataset = load_dataset(cfg.data)
    need = cfg.W if command == "pretrain" else cfg.D
    train = check_videos(dataset.train, need, skip=True, what=command, report=notes.append)
    test = check_videos(dataset.test, cfg.W if command == "pretrain" else cfg.D, skip=True,
                        what=command, report=notes.append)
    train = loaders.validate_files(cfg.loader, train, device=cfg.device, min_frames=need, skip=True,
                                   report=notes.append)
    test = loaders.validate_files(cfg.loader, test, device=cfg.device, min_frames=need, skip=True,
                                  report=notes.append)
    dataset = dataclasses.replace(dataset, train=train, test=test)
    t0 = time.perf_counter()
    if command == "pretrain":
        from fastssl.train.pretrain import pretrain
        pretrain(cfg, dataset, progress=False)
    else:
        from fastssl.train.finetune import finetune
        finetune(cfg, dataset, progress=False)
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "clips_per_s" in r]
    kept = rows[1:] if len(rows) > 1 else rows
    if len(rows) <= 1:
        notes.append("only one logging interval: it includes the loader's start-up")
    clips = summarize([r["clips_per_s"] for r in kept], "clips/s")
    out = {"metric": clips, "data_wait_fraction": summarize([r["data_wait_fraction"] for r in kept], "fraction"),
           "first_interval": rows[0] if rows else None, "steps": steps, "log_every": log_every,
           "loader": cfg.loader, "wall_seconds_incl_startup_eval_checkpoint": wall, "notes": notes}
    if command == "pretrain":
        out["questions_per_s"] = scaled(clips, 1.0 / cfg.N, "questions/s")
    return out


# --------------------------------------------------------------------------------------------
# the clip-builder op: GB/s against the device's copy bandwidth
# --------------------------------------------------------------------------------------------


def _op_inputs(spec: dict):
    from fastssl.train.common import input_dtype
    cfg = config(spec, "pretrain")
    windows, starts, orders, _ = _windows_questions(cfg, cfg.device, cfg.batch_size, seed=1)
    dtype = input_dtype(cfg)
    out_bytes = cfg.batch_size * cfg.N * cfg.D * cfg.size * cfg.size * 3 * dtype.itemsize
    return cfg, windows, starts, orders, dtype, windows.numel() + out_bytes


def op(spec: dict, which: str) -> dict:
    """`which` = reference (torch) | triton. GB/s = (uint8 windows read + clips written) / s."""
    from fastssl.kernels import build_clips_reference, build_clips_triton

    cfg, windows, starts, orders, dtype, nbytes = _op_inputs(spec)
    fn = {"reference": build_clips_reference, "triton": build_clips_triton}[which]

    def run():
        return fn(windows, starts, orders, mean=cfg.mean, std=cfg.std, dtype=dtype)

    out = run()
    err = None
    if which != "reference":
        ref = build_clips_reference(windows, starts, orders, mean=cfg.mean, std=cfg.std, dtype=dtype)
        err = float((out.float() - ref.float()).abs().max())
    del out

    def step():
        run()
        sync(cfg.device)
        return nbytes

    samples = _measure(spec, step)
    return {"metric": rate_stats(samples, "GB/s", scale=1e-9), "bytes_per_call": nbytes,
            "shape": [cfg.batch_size, cfg.W, cfg.size, cfg.size, 3], "dtype": str(dtype),
            "max_abs_diff_vs_reference": err, "notes": []}


def op_dali(spec: dict) -> dict:
    """The same job done the DALI-only way: fn.sequence_rearrange (gather the N*D frames by
    start + order) + fn.crop_mirror_normalize (normalize, cast, FHWC out = channels_last_3d's
    memory layout) inside a pipeline fed by external_source (no_copy)."""
    from nvidia.dali import fn, pipeline_def, types

    from fastssl.benchmarks.machine import usable_cores
    from fastssl.kernels import build_clips_reference

    cfg, windows, starts, orders, dtype, nbytes = _op_inputs(spec)
    cuda = cfg.device.startswith("cuda")
    notes = []
    dali_dtype = types.FLOAT
    if dtype != torch.float32:
        dali_dtype = types.FLOAT16  # DALI has no bf16: fp16 is the same number of bytes
        notes.append(f"DALI writes float16 where fastssl writes {dtype} (DALI has no bfloat16)")
    B = cfg.batch_size
    samples_in = [windows[b] if cuda else windows[b].numpy() for b in range(B)]
    order = (starts[:, :, None] + orders).reshape(B, -1).to(torch.int32).cpu().numpy()
    order_list = [order[b] for b in range(B)]

    @pipeline_def(batch_size=B, num_threads=usable_cores(), device_id=0 if cuda else None,
                  prefetch_queue_depth=2)
    def pipe():
        x = fn.external_source(source=lambda: samples_in, batch=True, layout="FHWC", no_copy=True,
                               device="gpu" if cuda else "cpu")
        new_order = fn.external_source(source=lambda: order_list, batch=True, no_copy=True)
        x = fn.sequence_rearrange(x, new_order=new_order)
        return fn.crop_mirror_normalize(x, dtype=dali_dtype, mean=list(cfg.mean), std=list(cfg.std),
                                        output_layout="FHWC")

    p = pipe()
    p.build()
    (first,) = p.run()
    got = np.asarray(first.as_cpu()[0] if cuda else first[0], dtype=np.float32)
    ref = build_clips_reference(windows[:1], starts[:1], orders[:1], mean=cfg.mean, std=cfg.std,
                                dtype=torch.float32)
    ref = ref.permute(0, 2, 3, 4, 1).reshape(got.shape).cpu().numpy()  # (N*D, H, W, C)
    err = float(np.abs(got - ref).max())

    def step():
        p.run()
        sync(cfg.device)
        return nbytes

    samples = _measure(spec, step)
    del p
    return {"metric": rate_stats(samples, "GB/s", scale=1e-9), "bytes_per_call": nbytes,
            "max_abs_diff_vs_reference": err, "notes": notes}


def copy_bandwidth(spec: dict) -> dict:
    """The device's copy bandwidth, measured here: CPU a large tensor copy_, GPU device to device.
    GB/s counts bytes read + written, like the op's figure."""
    device = spec["device"]
    n = (1 << 30) if device.startswith("cuda") else (256 << 20)
    src = torch.ones(n, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)

    def step():
        dst.copy_(src)
        sync(device)
        return 2 * n

    samples = _measure(spec, step)
    return {"metric": rate_stats(samples, "GB/s", scale=1e-9), "bytes_per_call": 2 * n,
            "what": "torch copy_ " + ("device to device" if device.startswith("cuda") else
                                      f"host to host ({torch.get_num_threads()} threads)"),
            "notes": []}


# --------------------------------------------------------------------------------------------
# peer decoders (not dependencies): the same windows, one process, like the profile's figures
# --------------------------------------------------------------------------------------------


def _peer_windows(spec: dict):
    cfg = config(spec, "pretrain")
    notes: list[str] = []
    _, videos = _videos(cfg, "pyav", cfg.W, notes)
    plan = _plan(cfg, videos)
    return cfg, videos, _samples(plan), notes


def _samples(plan):
    """(window, question) in the order every loader visits them (the key stream)."""
    from fastssl.data.sampling import stream_keys
    for (epoch, i), in stream_keys(plan.epoch_size, 1):
        yield plan.sample(epoch, i)


def _crop_flip(x: torch.Tensor, window) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> the window's crop, flipped if asked."""
    s = window.size
    x = x[:, window.top:window.top + s, window.left:window.left + s]
    return x.flip(2) if window.flip else x


def peer(spec: dict, which: str) -> dict:
    """`which` = torchcodec | decord: decode each window, resize to the preset's frame size, crop
    and flip; one process, one window per sample, decoders kept open per file (like fastssl's)."""
    import torch.nn.functional as F

    from fastssl.data.pyav_loader import decode_window

    cfg, videos, windows, notes = _peer_windows(spec)
    cuda = cfg.device.startswith("cuda")
    h, w = cfg.resize
    cache: dict = {}
    if which == "torchcodec":
        from torchcodec.decoders import VideoDecoder

        def open_(path):
            return VideoDecoder(path, dimension_order="NHWC", seek_mode="approximate",
                                device="cuda" if cuda else "cpu")

        def frames(window):
            video = videos[window.video]
            dec = cache.get(video.path) or cache.setdefault(video.path, open_(video.path))
            x = dec.get_frames_in_range(window.start, window.start + window.length).data
            x = F.interpolate(x.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", antialias=True,
                              align_corners=False).permute(0, 2, 3, 1)
            return _crop_flip(x, window)
    else:
        import decord

        ctx = decord.gpu(0) if cuda else decord.cpu(0)

        def frames(window):
            video = videos[window.video]
            vr = cache.get(video.path) or cache.setdefault(
                video.path, decord.VideoReader(video.path, ctx=ctx, width=w, height=h))
            x = torch.from_numpy(vr.get_batch(list(range(window.start, window.start + window.length))).asnumpy())
            return _crop_flip(x, window)

    first, _ = next(windows)
    ours = decode_window(videos, first, cfg.resize)
    theirs = frames(first).cpu().numpy()
    diff = float(np.abs(ours.astype(np.float32) - theirs.astype(np.float32)).mean())

    def step():
        window, _ = next(windows)
        frames(window)
        sync(cfg.device)
        return 1

    samples = _measure(spec, step)
    q = rate_stats(samples, "windows/s")
    notes.append("one process, one window at a time (compare with profile: fastssl/baseline decode)")
    return {"metric": q, "frames_per_s": scaled(q, cfg.W, "frames/s"),
            "mean_abs_diff_vs_fastssl_pyav": diff, "notes": notes}


# --------------------------------------------------------------------------------------------
# profile: where the time of one question goes, per path, in one process
# --------------------------------------------------------------------------------------------


def _handover(workers: int, payload: tuple, dtype: torch.dtype, batch: int, seconds: float,
              deadline: float | None) -> dict:
    """Questions/s a DataLoader reaches when its workers only allocate and hand over a payload:
    the ceiling set by moving the bytes between processes alone."""
    from torch.utils.data import DataLoader, Dataset

    class Payload(Dataset):
        def __len__(self):
            return 1 << 30

        def __getitem__(self, i):
            return torch.full(payload, 1, dtype=dtype)

    it = iter(DataLoader(Payload(), batch_size=batch, num_workers=workers,
                         prefetch_factor=4 if workers else None))
    block = max(1, workers)

    def step():
        for _ in range(block):
            next(it)
        return block * batch

    try:
        samples = measure(step, warmup=2, seconds=seconds, min_samples=3, deadline=deadline)
    finally:
        _close(it)
    return rate_stats(samples, "questions/s")


def profile(spec: dict) -> dict:
    """Per question, in one process and one thread (as in a DataLoader worker): the time of each
    stage of fastssl's PyAV path and of the baseline, over the same windows; the clip builder in
    the main process; and the hand-over ceiling of each path's payload."""
    import av
    from av.video.reformatter import Interpolation

    from fastssl.benchmarks import baseline
    from fastssl.data.pyav_decode import WindowDecoder
    from fastssl.kernels import build_clips
    from fastssl.train.common import input_dtype

    cfg, videos, windows, notes = _peer_windows(spec)
    count = int(spec.get("profile_questions", 48))
    todo = [next(windows) for _ in range(count)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    h, w = cfg.resize
    s = cfg.size
    mean = torch.tensor(cfg.mean).view(3, 1, 1, 1)
    std = torch.tensor(cfg.std).view(3, 1, 1, 1)

    def clock(stages, name, t0):
        t1 = time.perf_counter()
        stages[name] = stages.get(name, 0.0) + t1 - t0
        return t1

    # fastssl: WindowDecoder's steps with a clock between them (same calls, same order)
    dec = WindowDecoder()
    fast: dict[str, float] = {}
    hits = 0
    for window, _ in todo:
        video = videos[window.video]
        t = time.perf_counter()
        hits += video.path in dec._open
        container = dec._container(video.path)
        stream = container.streams.video[0]
        t = clock(fast, "open (LRU of 8 open files)", t)
        container.seek(int(round(window.start / video.fps / stream.time_base)), stream=stream,
                       backward=True, any_frame=False)
        t = clock(fast, "seek", t)
        out = np.empty((window.length, h, w, 3), np.uint8)
        got = 0
        it = container.decode(stream)
        while got < window.length:
            frame = next(it)
            t = clock(fast, "decode (incl. frames before the window)", t)
            if int(round(frame.time * video.fps)) < window.start:
                continue
            out[got] = dec._reformatter.reformat(frame, width=w, height=h, format="rgb24",
                                                 interpolation=Interpolation.BILINEAR).to_ndarray()
            got += 1
            t = clock(fast, "yuv->rgb + resize (one reused swscale pass)", t)
        x = out[:, window.top:window.top + s, window.left:window.left + s]
        np.ascontiguousarray(x[:, :, ::-1] if window.flip else x)
        clock(fast, "crop + flip", t)
    dec.close()

    # baseline: the same steps as baseline.read_frames / BaselineQuestions.__getitem__
    base: dict[str, float] = {}
    for window, q in todo:
        video = videos[window.video]
        t = time.perf_counter()
        container = av.open(video.path)
        stream = container.streams.video[0]
        t = clock(base, "open (every question)", t)
        container.seek(int(window.start / video.fps / stream.time_base), stream=stream)
        t = clock(base, "seek", t)
        rgb = []
        it = container.decode(stream)
        while len(rgb) < window.length:
            frame = next(it)
            t = clock(base, "decode (incl. frames before the window)", t)
            if int(round(frame.time * video.fps)) < window.start:
                continue
            rgb.append(frame.to_ndarray(format="rgb24"))
            t = clock(base, "frame.to_ndarray(rgb24), full size", t)
        container.close()
        x = baseline.resize_crop_flip(rgb, window, cfg.resize)
        t = clock(base, "resize + crop + flip (torch, uint8)", t)
        baseline.make_clips(x, q.starts, q.orders, mean, std)
        clock(base, "N float32 clips (in the worker)", t)

    # end-to-end single-process totals with the real code, as a check on the sum of the stages
    real_fast = WindowDecoder()
    from fastssl.data import pyav_loader
    pyav_loader._decoder = real_fast
    t = time.perf_counter()
    for window, _ in todo:
        pyav_loader.decode_window(videos, window, cfg.resize)
    fast_total = (time.perf_counter() - t) / count
    pyav_loader.close_decoder()
    ds = baseline.BaselineQuestions.__new__(baseline.BaselineQuestions)
    ds.mean, ds.std = mean, std
    t = time.perf_counter()
    for window, q in todo:
        frames = baseline.read_frames(videos[window.video].path, window.start, window.length,
                                      videos[window.video].fps)
        baseline.make_clips(baseline.resize_crop_flip(frames, window, cfg.resize), q.starts, q.orders,
                            mean, std)
    base_total = (time.perf_counter() - t) / count

    # the clip builder (fastssl: main process, after the hand-over), per question: CPU time at
    # one thread, and wall time with the main process's usual threads
    B = cfg.batch_size
    wins, starts, orders, _ = _windows_questions(cfg, "cpu", B)

    def build_ms(reps=5):
        build_clips(wins, starts, orders, mean=cfg.mean, std=cfg.std, dtype=input_dtype(cfg))
        t = time.perf_counter()
        for _ in range(reps):
            build_clips(wins, starts, orders, mean=cfg.mean, std=cfg.std, dtype=input_dtype(cfg))
        return (time.perf_counter() - t) / reps / B * 1e3

    build_1t = build_ms()
    torch.set_num_threads(threads)
    build_main = build_ms()

    ms = lambda d: {k: v / count * 1e3 for k, v in d.items()}  # noqa: E731
    seconds = min(2.0, spec.get("seconds", 2.0))
    window_bytes = cfg.W * s * s * 3
    clip_bytes = cfg.N * cfg.D * s * s * 3 * 4
    handover = {
        "fastssl uint8 window": _handover(cfg.workers, (cfg.W, s, s, 3), torch.uint8, B, seconds, _deadline(spec)),
        "baseline float32 clips": _handover(cfg.workers, (cfg.N, 3, cfg.D, s, s), torch.float32, B, seconds,
                                            _deadline(spec)),
    }
    fast_ms, base_ms = ms(fast), ms(base)
    fast_ms["clip builder (main process, after hand-over)"] = build_1t
    fast_cpu = fast_total * 1e3 + build_1t
    return {
        "metric": summarize([base_total * 1e3 / fast_cpu], "x (baseline / fastssl CPU ms per question)"),
        "questions": count, "threads": 1,
        "fastssl_ms_per_question": fast_ms, "baseline_ms_per_question": base_ms,
        "fastssl_total_ms_real_code": fast_cpu, "baseline_total_ms_real_code": base_total * 1e3,
        "fastssl_open_file_hits": hits / count,
        "build_clips_ms_per_question_main_threads": build_main, "main_process_threads": threads,
        "bytes_per_question": {"fastssl uint8 window": window_bytes, "baseline float32 clips": clip_bytes},
        "handover_only_questions_per_s": handover, "workers": cfg.workers, "notes": notes,
    }


COMPONENTS = {
    "loader.pyav": lambda spec: loader(spec, "pyav"),
    "loader.dali": lambda spec: loader(spec, "dali"),
    "loader.baseline": lambda spec: loader(spec, "baseline"),
    "model.pretext": lambda spec: model(spec, "pretext"),
    "model.finetune": lambda spec: model(spec, "finetune"),
    "e2e.pretrain": lambda spec: e2e(spec, "pretrain"),
    "e2e.finetune": lambda spec: e2e(spec, "finetune"),
    "op.copy": copy_bandwidth,
    "op.reference": lambda spec: op(spec, "reference"),
    "op.triton": lambda spec: op(spec, "triton"),
    "op.dali": op_dali,
    "peer.torchcodec": lambda spec: peer(spec, "torchcodec"),
    "peer.decord": lambda spec: peer(spec, "decord"),
    "profile": profile,
}
