"""fastssl on prepared files against the decoders people use on the original videos.

Measures CPU time (time.process_time, one thread everywhere) per random 20-frame window,
full-size uint8 RGB, of:
  fastssl-<codec>   fastssl's WindowDecoder on files written by `prepare`'s transcode (GOP 8)
  fastssl-orig      fastssl's WindowDecoder on the original videos
  torchcodec-orig   torchcodec's VideoDecoder on the originals   (skipped if not installed)
  decord-orig       decord's VideoReader on the originals        (skipped if not installed)
and `prepare`'s own cost (CPU-s per source video: decode + encode + verify, one thread), with
the break-even: windows per video after which prepare + decoding the prepared files costs less
CPU than decoding the originals with the fastest decoder that reads them.

Every decoder gets the same seeded windows; each repeat runs every decoder once, in a rotated
order (the machine is noisy: medians and min-max of the repeats are reported). Readers are opened
before the clock starts and kept open ("warm", as a loader that caches open files), or opened for
every window with --cold (as a Dataset that opens the file in __getitem__). The first window of
every decoder on the originals is checked against fastssl-orig (same frames, within rounding).

torchcodec and decord are not fastssl dependencies: install them in a throwaway venv with the
same torch, e.g. `python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch torchcodec
decord av numpy` (torchcodec also needs the system's FFmpeg libraries: apt-get install ffmpeg),
then run this file with the repo's interpreter and the peers' site-packages after it:

  OMP_NUM_THREADS=1 PEERS_SITE=/tmp/peers/lib/python3.11/site-packages \\
      .venv/bin/python bench/peers.py SRC_DIR --work /tmp/peers-work --codec h264 --codec vp9

SRC_DIR: a folder of videos (searched recursively), e.g. a few UCF101 class folders.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
if os.environ.get("PEERS_SITE"):
    sys.path.append(os.environ["PEERS_SITE"])  # after ours: fastssl's own packages win

import numpy as np  # noqa: E402

from fastssl.data.prepare.transcode import Settings, transcode  # noqa: E402
from fastssl.data.pyav_decode import WindowDecoder, count_frames  # noqa: E402
from fastssl.files import atomic_write  # noqa: E402

EXTS = (".avi", ".mp4", ".mkv", ".webm", ".mov")


def fastssl_decoder(fps_of):
    def open_(path):
        # One decoding thread, as for the peers (FFmpeg's own choice measured ~5-10% more CPU).
        dec = WindowDecoder(max_open=1, threads=1)
        return dec, path

    def read(reader, start, length):
        dec, path = reader
        return dec.decode(path, start, length, fps=fps_of[path])

    def close(reader):
        reader[0].close()
    return open_, read, close


def torchcodec_decoder():
    import torch
    from torchcodec.decoders import VideoDecoder
    torch.set_num_threads(1)

    def open_(path):
        return VideoDecoder(path, device="cpu", num_ffmpeg_threads=1, dimension_order="NHWC")

    def read(reader, start, length):
        return reader.get_frames_in_range(start, start + length).data.numpy()
    return open_, read, lambda r: None


def decord_decoder():
    import decord

    def open_(path):
        return decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)

    def read(reader, start, length):
        return reader.get_batch(list(range(start, start + length))).asnumpy()
    return open_, read, lambda r: None


def fps_of_file(path):
    import av
    with av.open(path) as c:
        s = c.streams.video[0]
        return float(s.average_rate or s.guessed_rate)


def prepare_all(srcs, work, codec, gop):
    out_dir = os.path.join(work, f"prepared_{codec}", "videos")
    outs, cpu, size, frames = [], [], 0, 0
    for k, src in enumerate(srcs):
        t0 = time.process_time()
        r = transcode(src, f"Nat/v{k:03d}", "Nat", out_dir, Settings(codec=codec, gop=gop))
        cpu.append(time.process_time() - t0)
        if not r.ok:
            raise SystemExit(f"{src}: prepare failed: {r.reason}")
        outs.append(os.path.join(out_dir, r.rel))
        size += r.bytes
        frames += r.frames
    return outs, dict(cpu_s_per_video=statistics.mean(cpu), frames_per_s=frames / sum(cpu),
                      kb_per_frame=size / frames / 1e3)


def run(args):
    srcs = sorted(p for p in glob.glob(os.path.join(args.src, "**", "*"), recursive=True)
                  if p.lower().endswith(EXTS))[: args.videos]
    if not srcs:
        raise SystemExit(f"no videos in {args.src}")
    os.makedirs(args.work, exist_ok=True)
    files = {"orig": srcs}
    prep = {}
    for codec in args.codec:
        files[codec], prep[codec] = prepare_all(srcs, args.work, codec, args.gop)
        print(f"prepare {codec}: {prep[codec]}", flush=True)
    n_frames = [count_frames(p) for p in srcs]
    fps_of = {p: fps_of_file(p) for group in files.values() for p in group}

    decoders = {f"fastssl-{c}": (c, fastssl_decoder(fps_of)) for c in args.codec}
    decoders["fastssl-orig"] = ("orig", fastssl_decoder(fps_of))
    for name, factory in (("torchcodec-orig", torchcodec_decoder), ("decord-orig", decord_decoder)):
        try:
            decoders[name] = ("orig", factory())
        except ImportError as e:
            print(f"{name}: skipped ({e})", flush=True)

    rng = np.random.default_rng(args.seed)
    windows = [[(int(v), int(rng.integers(0, n_frames[v] - args.length + 1)))
                for v in rng.integers(0, len(srcs), args.windows)] for _ in range(args.repeats)]

    # Readers opened once (warm), and a check that the decoders of the originals agree.
    readers = {name: [open_(p) for p in files[group]]
               for name, (group, (open_, _, _)) in decoders.items()}
    for name, (group, (_, read, _)) in decoders.items():
        for reader in readers[name]:
            read(reader, 0, args.length)  # containers opened, first frames decoded
    v0, s0 = windows[0][0]
    ref = decoders["fastssl-orig"][1][1](readers["fastssl-orig"][v0], s0, args.length)
    for name, (group, (_, read, _)) in decoders.items():
        x = read(readers[name][v0], s0, args.length)
        assert x.shape == ref.shape and x.dtype == np.uint8, (name, x.shape, x.dtype)
        diff = float(np.abs(x.astype(np.int16) - ref).mean())
        print(f"check {name}: shape {x.shape}, mean |diff| vs fastssl-orig {diff:.2f}", flush=True)
        if group == "orig" and diff > 3:
            raise SystemExit(f"{name} decodes other frames than fastssl-orig (mean diff {diff:.1f})")

    names = list(decoders)
    times = {n: [] for n in names}
    for r in range(args.repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            group, (open_, read, close) = decoders[name]
            t0 = time.process_time()
            for v, s in windows[r]:
                if args.cold:
                    reader = open_(files[group][v])
                    read(reader, s, args.length)
                    close(reader)
                else:
                    read(readers[name][v], s, args.length)
            times[name].append((time.process_time() - t0) / args.windows)
        print(f"repeat {r + 1}/{args.repeats}: " + ", ".join(
            f"{n} {times[n][-1] * 1e3:.1f}" for n in names) + " ms/window", flush=True)

    res = {"windows_per_repeat": args.windows, "repeats": args.repeats, "cold": args.cold,
           "videos": len(srcs), "frames_per_video": statistics.mean(n_frames), "prepare": prep,
           "decoders": {}}
    print(f"\n{'decoder':18s} {'ms/window':>10s} {'min-max':>13s} {'windows/s/core':>15s}")
    for n in names:
        med = statistics.median(times[n])
        res["decoders"][n] = dict(ms_median=med * 1e3, ms_min=min(times[n]) * 1e3,
                                  ms_max=max(times[n]) * 1e3, windows_per_s=1 / med)
        print(f"{n:18s} {med * 1e3:10.1f} {min(times[n]) * 1e3:6.1f}-{max(times[n]) * 1e3:<6.1f}"
              f" {1 / med:15.1f}")
    best_orig = min((n for n in names if decoders[n][0] == "orig"),
                    key=lambda n: res["decoders"][n]["ms_median"])
    t_orig = res["decoders"][best_orig]["ms_median"] / 1e3
    for codec in args.codec:
        t_prep = res["decoders"][f"fastssl-{codec}"]["ms_median"] / 1e3
        cost = prep[codec]["cpu_s_per_video"]
        be = cost / (t_orig - t_prep) if t_orig > t_prep else None
        res.setdefault("break_even", {})[codec] = dict(against=best_orig, windows_per_video=be)
        print(f"break-even {codec}: prepare {cost:.2f} CPU-s/video; vs {best_orig}: "
              + (f"{be:.0f} windows per video" if be else "never (prepared files are not faster)"))
    if args.json:
        atomic_write(args.json, json.dumps(res, indent=1))
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="folder of source videos (searched recursively)")
    p.add_argument("--work", required=True, help="folder for the prepared files")
    p.add_argument("--codec", action="append", choices=("h264", "vp9", "mjpeg"),
                   help="prepared codecs to measure (repeatable; default h264)")
    p.add_argument("--gop", type=int, default=8, help="GOP of the prepared files (prepare's default 8)")
    p.add_argument("--videos", type=int, default=8, help="use the first N videos of SRC")
    p.add_argument("--windows", type=int, default=100, help="windows per decoder per repeat")
    p.add_argument("--length", type=int, default=20, help="frames per window")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cold", action="store_true", help="open the file for every window")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    args.codec = args.codec or ["h264"]
    run(args)


if __name__ == "__main__":
    main()
