"""Decoding: peer decoders on the same windows, and the per-question profile of both CPU paths
(fastssl's PyAV loader and the baseline), stage by stage - read from the real code's timing
hooks (`WindowDecoder(timings=...)`, `baseline.read_frames(timings=...)`), never re-implemented."""
from __future__ import annotations

import time

import numpy as np
import torch

from fastssl.benchmarks.common import (crop_flip, deadline, device_inputs, fit_workers, plan_windows, sync,
                                       timed)
from fastssl.benchmarks.stats import measure, rate_stats, scaled, summarize


def peer(spec: dict, which: str) -> dict:
    """`which` = torchcodec | decord | pyav (fastssl's WindowDecoder, the reference): decode each
    window, resize to the preset's frame size, crop and flip; one process, one window per sample,
    decoders kept open per file (like fastssl's). Each library keeps its own decoder threading
    defaults."""
    import torch.nn.functional as F

    from fastssl.data.pyav_loader import decode_window

    cfg, videos, windows, notes = plan_windows(spec)
    cuda = cfg.device.startswith("cuda")
    h, w = cfg.resize
    cache: dict = {}
    if which == "pyav":  # fastssl's own decoder, timed the same way, for the comparison

        def frames(window):
            return torch.from_numpy(decode_window(videos, window, cfg.resize))
    elif which == "torchcodec":
        try:
            from torchcodec.decoders import VideoDecoder
        except Exception as e:  # noqa: BLE001 - e.g. no FFmpeg shared libraries on the host
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RuntimeError(f"torchcodec is installed but does not load (it needs FFmpeg 4-8 shared "
                               f"libraries and a matching torch): {first}") from None

        def open_(path):
            return VideoDecoder(path, dimension_order="NHWC", seek_mode="approximate",
                                device="cuda" if cuda else "cpu")

        def frames(window):
            video = videos[window.video]
            dec = cache.get(video.path) or cache.setdefault(video.path, open_(video.path))
            x = dec.get_frames_in_range(window.start, window.start + window.length).data
            x = x.permute(0, 3, 1, 2)
            if x.is_cuda:  # the uint8 antialiased resize is a CPU kernel; on the GPU go through float
                x = F.interpolate(x.float(), size=(h, w), mode="bilinear", antialias=True,
                                  align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
            else:
                x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
            x = x.permute(0, 2, 3, 1)
            return crop_flip(x, window)
    else:
        import decord

        ctx = decord.gpu(0) if cuda else decord.cpu(0)

        def frames(window):
            video = videos[window.video]
            vr = cache.get(video.path) or cache.setdefault(
                video.path, decord.VideoReader(video.path, ctx=ctx, width=w, height=h))
            x = torch.from_numpy(vr.get_batch(list(range(window.start, window.start + window.length))).asnumpy())
            return crop_flip(x, window)

    first, _ = next(windows)
    ours = decode_window(videos, first, cfg.resize)
    theirs = frames(first).cpu().numpy()
    diff = float(np.abs(ours.astype(np.float32) - theirs.astype(np.float32)).mean())

    def step():
        window, _ = next(windows)
        frames(window)
        sync(cfg.device)
        return 1

    samples = timed(spec, step)
    q = rate_stats(samples, "windows/s")
    notes.append("one process, one window at a time, each library's default decoder threads")
    return {"metric": q, "frames_per_s": scaled(q, cfg.W, "frames/s"),
            "mean_abs_diff_vs_fastssl_pyav": diff, "notes": notes}



def _handover(workers: int, payload: tuple, dtype: torch.dtype, batch: int, seconds: float,
              deadline: float | None) -> dict:
    """Questions/s a DataLoader reaches when its workers only allocate and hand over a payload:
    the ceiling set by moving the bytes between processes alone. Batches of at most 8 questions
    and DataLoader's default prefetch (paper-size float clips are 29 MB a question)."""
    from torch.utils.data import DataLoader, Dataset

    from fastssl.data.contract import BatchStream

    batch = min(batch, 8)
    nbytes = int(np.prod(payload)) * torch.empty((), dtype=dtype).element_size()
    notes: list[str] = []
    workers = fit_workers(workers, 2, batch * nbytes, notes, "hand-over test")

    class Payload(Dataset):
        def __len__(self):
            return 1 << 30

        def __getitem__(self, i):
            return torch.full(payload, 1, dtype=dtype)

    it = BatchStream(iter(DataLoader(Payload(), batch_size=batch, num_workers=workers,
                                     prefetch_factor=2 if workers else None)))
    block = max(1, workers)

    def step():
        for _ in range(block):
            next(it)
        return block * batch

    with it:
        samples = measure(step, warmup=2, seconds=seconds, min_samples=3, deadline=deadline)
    return {**rate_stats(samples, "questions/s"), "workers": workers, "notes": notes}


STAGE_NAMES = {  # the hooks' stage names -> what the table says
    "fastssl": {"open": "open (LRU of 8 open files)", "seek": "seek",
                "decode": "decode (incl. frames before the window)",
                "convert": "yuv->rgb + resize (one reused swscale pass)"},
    "baseline": {"open": "open (every question)", "seek": "seek",
                 "decode": "decode (incl. frames before the window)",
                 "convert": "frame.to_ndarray(rgb24), full size"},
}


def profile(spec: dict) -> dict:
    """Per question, in one process and one thread (as in a DataLoader worker): the time of each
    stage of fastssl's PyAV path and of the baseline, over the same windows (read from the
    timing hooks of the real code); the clip builder in the main process; and the hand-over
    ceiling of each path's payload."""
    from fastssl.benchmarks import baseline
    from fastssl.data import pyav_loader
    from fastssl.data.pyav_decode import WindowDecoder
    from fastssl.kernels import build_clips
    from fastssl.train.inputs import input_dtype

    cfg, videos, windows, notes = plan_windows(spec)
    count = int(spec.get("profile_questions", 48))
    todo = [next(windows) for _ in range(count)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    s = cfg.size
    mean, std = baseline.normalization(cfg.mean, cfg.std)
    clock = time.perf_counter

    # fastssl: the decoder's own stages (timing hook), then crop + flip as the loader does them
    stages: dict[str, float] = {}
    dec = WindowDecoder(timings=stages)
    crop = 0.0
    hits = 0
    for window, _ in todo:
        video = videos[window.video]
        hits += dec.is_open(video.path)
        frames = dec.decode(video.path, window.start, window.length, fps=video.fps, resize=cfg.resize)
        t = clock()
        crop_flip(torch.from_numpy(frames), window).contiguous()
        crop += clock() - t
    dec.close()
    fast = {STAGE_NAMES["fastssl"][k]: stages.get(k, 0.0) for k in WindowDecoder.STAGES}
    fast["crop + flip"] = crop

    # baseline: read_frames' own stages (timing hook), then its resize/crop/flip and clip making
    stages = {}
    resize = clips = 0.0
    for window, q in todo:
        video = videos[window.video]
        rgb = baseline.read_frames(video.path, window.start, window.length, video.fps, timings=stages)
        t = clock()
        x = baseline.resize_crop_flip(rgb, window, cfg.resize)
        t1 = clock()
        baseline.make_clips(x, q.starts, q.orders, mean, std)
        clips += clock() - t1
        resize += t1 - t
    base = {STAGE_NAMES["baseline"][k]: stages.get(k, 0.0) for k in WindowDecoder.STAGES}
    base["resize + crop + flip (torch, uint8)"] = resize
    base["N float32 clips (in the worker)"] = clips

    # each path's real per-sample code, untimed inside, as a check on the sum of the stages
    t = clock()
    for window, _ in todo:
        pyav_loader.decode_window(videos, window, cfg.resize)
    fast_total = (clock() - t) / count
    pyav_loader.close_decoder()
    t = clock()
    for window, q in todo:
        baseline.question_clips(videos[window.video], window, q, cfg.resize, mean, std)
    base_total = (clock() - t) / count

    # the clip builder (fastssl: main process, after the hand-over), per question. On the CPU:
    # CPU time at one thread, and wall time with the main process's usual threads. On CUDA it
    # runs on the GPU and costs the host nothing: its GPU time is reported instead.
    B = cfg.batch_size
    cuda = cfg.device.startswith("cuda")
    wins, starts, orders, _ = device_inputs(cfg, cfg.device, B)

    def build_ms(reps=5):
        build_clips(wins, starts, orders, mean=cfg.mean, std=cfg.std, dtype=input_dtype(cfg))
        sync(cfg.device)
        t = time.perf_counter()
        for _ in range(reps):
            build_clips(wins, starts, orders, mean=cfg.mean, std=cfg.std, dtype=input_dtype(cfg))
        sync(cfg.device)
        return (time.perf_counter() - t) / reps / B * 1e3

    build_1t = 0.0 if cuda else build_ms()
    torch.set_num_threads(threads)
    build_main = build_ms()
    wins = None  # frees the device memory before the hand-over tests

    ms = lambda d: {k: v / count * 1e3 for k, v in d.items()}  # noqa: E731
    seconds = min(2.0, spec.get("seconds", 2.0) / 4)
    window_bytes = cfg.W * s * s * 3
    clip_bytes = cfg.N * cfg.D * s * s * 3 * 4
    handover = {
        "fastssl uint8 window": _handover(cfg.workers, (cfg.W, s, s, 3), torch.uint8, B, seconds, deadline(spec)),
        "baseline float32 clips": _handover(cfg.workers, (cfg.N, 3, cfg.D, s, s), torch.float32, B, seconds,
                                            deadline(spec)),
    }
    fast_ms, base_ms = ms(fast), ms(base)
    fast_ms["clip builder (on the GPU: no host time)" if cuda else "clip builder (main process, after hand-over)"] = build_1t
    fast_cpu = fast_total * 1e3 + build_1t
    return {
        "metric": summarize([base_total * 1e3 / fast_cpu], "x (baseline / fastssl CPU ms per question)"),
        "questions": count, "threads": 1,
        "fastssl_ms_per_question": fast_ms, "baseline_ms_per_question": base_ms,
        "fastssl_total_ms_real_code": fast_cpu, "baseline_total_ms_real_code": base_total * 1e3,
        "fastssl_open_file_hits": hits / count,
        "build_clips_ms_per_question_main_threads": build_main, "main_process_threads": threads,
        "build_clips_device": cfg.device,
        "bytes_per_question": {"fastssl uint8 window": window_bytes, "baseline float32 clips": clip_bytes},
        "handover_only_questions_per_s": handover, "workers": cfg.workers, "notes": notes,
    }
