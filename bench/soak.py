"""Soak: a bounded pretraining stress run on a dataset with broken files.

    .venv/bin/python bench/soak.py --minutes 20 --out /tmp/soak

What it does:

1. `fastssl synth` a small dataset (10 classes x 6 videos, 128x96, 48 frames, h264: 40 train
   videos) into OUT/data.
2. Damages training videos in ways the start-up checks do not catch. `fastssl pretrain` opens
   and demuxes every listed file before any work (dataset.check_index: exists, opens, frame
   count as index.csv says), so a file truncated to a third, a 0-byte file or a missing file is
   refused at start (the mp4 index, `moov`, is at the end of these files). What passes those
   checks and fails only when decoded:
     - before the start: random bytes over the middle third of the coded frames (the mp4's
       `mdat` box; `rnd-middle`), and over 85-97% of them, i.e. broken only in its last frames
       (`rnd-tail`);
   and, once the run is past its checks (first metrics line), what happens to a file on a
   shared disk during a long run:
     - truncated to a third (`truncated`), replaced by a 0-byte file (`zero-bytes`), deleted
       (`deleted`).
3. Runs `fastssl pretrain` (tiny preset, --workers 2, --log-every 10, --ckpt-every 100 so
   checkpoint rotation is part of the soak, --max-bad-fraction 0.3) as a subprocess in its own
   process group. The soak is bounded by time, not steps (the step rate depends on what else
   the shared machine runs): --steps is sized generously (--minutes x 60 / --sec-per-step) and
   the process group is sent SIGTERM at --minutes, as a scheduler would. The run must then write
   a checkpoint at its stop step, print the `--resume` command and exit 143; a run that
   finishes its steps first must exit 0.
4. Samples every --interval seconds the total RSS (VmRSS) and PSS (smaps_rollup) of the process
   tree (main + loader workers, walked through /proc), and follows metrics.jsonl every 0.5 s to
   time each log interval (steps/s per 10 steps).
5. Writes OUT/soak.csv (samples), OUT/intervals.csv (steps/s per log interval), OUT/soak.png
   (RSS and steps/s over time) and OUT/summary.json: peak RSS in the first vs last quarter of
   the training period (first to last training log line, so start-up and the final held-out
   evaluation are left out), step-rate median and spread (p10..p90) per quarter, how many times
   each damaged file was reported on stderr ("bad video (N so far)"), and whether the final
   data/bad_videos in metrics.jsonl equals the number of damaged files met.

Exit status: 0 when all holds; 1 when the last quarter's peak tree RSS exceeds the first
quarter's by more than --rss-growth (default 10%), a file is reported more than once, a
reported file is not one we damaged, data/bad_videos differs from the number of files met, or
pretrain did not end as described in 3 (exit 0, or 143 after our SIGTERM with
checkpoint-STEP.pt of its stop step on disk).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from fastssl.files import atomic_write

REPO = Path(__file__).resolve().parent.parent
FASTSSL = [sys.executable, "-m", "fastssl"]


# ---------------------------------------------------------------- process tree memory (/proc)

def _children(root: int) -> list[int]:
    """root and every descendant, from /proc/*/stat (ppid)."""
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
            parent[int(d)] = int(s[s.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            pass
    tree, todo = [], [root]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(c for c, pp in parent.items() if pp == p)
    return tree


def _kib(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(root: int) -> dict:
    pids = [p for p in _children(root) if os.path.exists(f"/proc/{p}")]
    rss = {p: _kib(f"/proc/{p}/status", "VmRSS:") for p in pids}
    pss = sum(_kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
    return {"procs": len([p for p in pids if rss[p]]), "rss_mib": sum(rss.values()) / 1024,
            "main_rss_mib": rss.get(root, 0) / 1024, "pss_mib": pss / 1024}


# ---------------------------------------------------------------- damage

def _mdat(path: Path) -> tuple[int, int]:
    """(start, end) of the payload of the mp4's top-level `mdat` box (the coded frames)."""
    data = path.read_bytes()
    pos = 0
    while pos + 8 <= len(data):
        size, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        head = 8
        if size == 1:
            size, head = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
        elif size == 0:
            size = len(data) - pos
        if kind == b"mdat":
            return pos + head, pos + size
        pos += size
    raise ValueError(f"{path}: no mdat box")


def _random_over(path: Path, a: float, b: float, rng) -> None:
    """Random bytes over fraction a..b of the coded frames (the header and index stay intact)."""
    start, end = _mdat(path)
    with open(path, "r+b") as f:
        f.seek(start + int((end - start) * a))
        f.write(rng.randbytes(int((end - start) * (b - a))))


BEFORE = {  # kind -> damage; these pass the start-up header checks
    "rnd-middle": lambda p, rng: _random_over(p, 1 / 3, 2 / 3, rng),
    "rnd-tail": lambda p, rng: _random_over(p, 0.85, 0.97, rng),
}
AFTER = {  # kind -> damage done once the run is past its start-up checks
    "truncated": lambda p, rng: os.truncate(p, p.stat().st_size // 3),
    "zero-bytes": lambda p, rng: os.truncate(p, 0),
    "deleted": lambda p, rng: p.unlink(),
}


def pick_victims(data: Path, n: int) -> list[Path]:
    """n training videos spread over the list (different classes)."""
    lines = [ln.split()[0] for ln in (data / "trainlist01.txt").read_text().splitlines() if ln.strip()]
    step = len(lines) // n
    return [data / "videos" / lines[i * step + step // 2] for i in range(n)]


# ---------------------------------------------------------------- metrics.jsonl follower

class Metrics:
    def __init__(self, path: Path):
        self.path, self.offset, self.buf = path, 0, ""
        self.lines: list[tuple[float, dict]] = []   # (time seen, training log line)
        self.last: dict = {}

    def poll(self, now: float) -> None:
        try:
            with open(self.path) as f:
                f.seek(self.offset)
                chunk = f.read()
                self.offset = f.tell()
        except OSError:
            return
        self.buf += chunk
        *done, self.buf = self.buf.split("\n")
        for line in done:
            if not line.strip():
                continue
            rec = json.loads(line)
            if "data/bad_videos" in rec:      # a training log line (held-out lines have none)
                self.lines.append((now, rec))
                self.last = rec

    @property
    def step(self) -> int:
        return self.last.get("step", 0)


# ---------------------------------------------------------------- summary helpers

def quarters(t0: float, t1: float, rows, key):
    """Split rows (dicts with key 't') falling in [t0, t1] into four equal time quarters."""
    q = [[] for _ in range(4)]
    span = max(t1 - t0, 1e-9)
    for r in rows:
        if t0 <= r["t"] <= t1:
            q[min(3, int((r["t"] - t0) / span * 4))].append(r[key])
    return q


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def plot(samples, intervals, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(2, 1, figsize=(7, 4.6), sharex=True, dpi=80)
    t = [s["t"] / 60 for s in samples]
    a.plot(t, [s["rss_mib"] for s in samples], label="tree RSS (main + workers)", lw=1.2)
    a.plot(t, [s["pss_mib"] for s in samples], label="tree PSS", lw=1.2)
    a.plot(t, [s["main_rss_mib"] for s in samples], label="main RSS", lw=1.0)
    a.set_ylabel("MiB")
    a.set_ylim(bottom=0)
    a.legend(loc="lower right", fontsize=8)
    a.grid(alpha=0.3)
    a.set_title(title, fontsize=9)
    b.step([i["t"] / 60 for i in intervals], [i["steps_per_s"] for i in intervals], where="post", lw=1.0)
    b.set_ylabel("steps/s (per 10 steps)")
    b.set_xlabel("minutes since start")
    b.set_ylim(bottom=0)
    b.grid(alpha=0.3)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    atomic_write(path, png.getvalue())


# ---------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--out", type=Path, default=Path("/tmp/soak"))
    ap.add_argument("--sec-per-step", type=float, default=1.0,
                    help="to size --steps so the run outlasts --minutes (an idle 2-core CPU: ~1.5)")
    ap.add_argument("--steps", type=int, default=None, help="override the sized step count")
    ap.add_argument("--interval", type=float, default=5, help="seconds between RSS samples")
    ap.add_argument("--rss-growth", type=float, default=0.10,
                    help="fail when last-quarter peak RSS > first-quarter peak x (1 + this)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import random
    rng = random.Random(args.seed)
    out = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    data, run = out / "data", out / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    subprocess.run([*FASTSSL, "synth", str(data), "--classes", "10", "--videos-per-class", "6",
                    "--size", "128x96", "--frames", "48", "--seed", str(args.seed)],
                   check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    victims = pick_victims(data, len(BEFORE) + len(AFTER))
    damaged = {}   # path -> kind
    for (kind, hurt), p in zip(BEFORE.items(), victims):
        hurt(p, rng)
        damaged[str(p.resolve())] = kind
    later = list(zip(AFTER.items(), victims[len(BEFORE):]))

    steps = args.steps or max(50, int(args.minutes * 60 / args.sec_per_step))
    cmd = [*FASTSSL, "pretrain", "--data", str(data), "--out", str(run), "--preset", "tiny",
           "--workers", "2", "--steps", str(steps), "--log-every", "10", "--ckpt-every", "100",
           "--max-bad-fraction", "0.3", "--seed", str(args.seed)]
    print("soak:", " ".join(cmd[2:]), flush=True)
    errf = open(out / "pretrain.stderr", "w")
    outf = open(out / "pretrain.stdout", "w")
    t_start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=outf, stderr=errf, start_new_session=True)
    metrics = Metrics(run / "metrics.jsonl")
    samples, next_sample, termed = [], 0.0, False
    load = []
    while True:
        now = time.monotonic() - t_start
        metrics.poll(now)
        if later and metrics.step > 0:      # past the start-up checks: damage the rest now
            for (kind, hurt), p in later:
                damaged[str(p.resolve())] = kind
                hurt(p, rng)
            print(f"soak: damaged {len(later)} more files at step {metrics.step} ({now:.0f} s)", flush=True)
            later = []
        if now >= next_sample:
            mem = tree_memory(proc.pid)
            if mem["procs"]:
                samples.append({"t": round(now, 2), "step": metrics.step, **{k: round(v, 1) if isinstance(v, float) else v for k, v in mem.items()}})
            next_sample += args.interval
            if len(samples) % 24 == 1:
                load.append(os.getloadavg()[0])
                print(f"soak: {now / 60:5.1f} min step {metrics.step}/{steps} tree RSS {mem['rss_mib']:.0f} MiB "
                      f"({mem['procs']} procs) load {load[-1]:.2f}", flush=True)
        if proc.poll() is not None:
            break
        if not termed and now > args.minutes * 60:
            os.killpg(proc.pid, signal.SIGTERM)
            termed = True
        time.sleep(0.5)
    rc = proc.returncode
    metrics.poll(time.monotonic() - t_start)
    errf.close(), outf.close()
    wall = time.monotonic() - t_start

    # steps/s per log interval, from the times the log lines appeared (0.5 s resolution)
    intervals = []
    for (ta, ra), (tb, rb) in zip(metrics.lines, metrics.lines[1:]):
        if tb > ta and rb["step"] > ra["step"]:
            intervals.append({"t": round(tb, 2), "step": rb["step"],
                              "steps_per_s": round((rb["step"] - ra["step"]) / (tb - ta), 4),
                              "clips_per_s": round(rb["clips_per_s"], 2),
                              "data_wait_fraction": round(rb["data_wait_fraction"], 4)})

    # bad-file reports on stderr: "bad video (N so far), ...:\n  PATH: reason"
    text = (out / "pretrain.stderr").read_text()
    reports: dict[str, int] = {}
    for m in re.finditer(r"bad video \((\d+) so far\)[^\n]*\n\s+(.+?\.mp4): ", text):
        path = str(Path(m.group(2)).resolve())
        reports[path] = reports.get(path, 0) + 1
    final_bad = metrics.last.get("data/bad_videos")

    # quarters of the training period: first to last training log line
    t0 = metrics.lines[0][0] if metrics.lines else 0
    t1 = metrics.lines[-1][0] if metrics.lines else wall
    rss_q = quarters(t0, t1, samples, "rss_mib")
    pss_q = quarters(t0, t1, samples, "pss_mib")
    rate_q = quarters(t0, t1, intervals, "steps_per_s")
    peak = lambda q: max(q) if q else None  # noqa: E731
    growth = (peak(rss_q[3]) / peak(rss_q[0]) - 1) if rss_q[0] and rss_q[3] else None

    problems = []
    stopped = re.search(r"stopped by SIGTERM after step (\d+)", text)
    stop_ckpt = run / f"checkpoint-{stopped.group(1)}.pt" if stopped else None
    if termed:
        if rc != 143 or stop_ckpt is None or not stop_ckpt.is_file() or "--resume" not in text:
            problems.append(f"after SIGTERM: exit {rc} (want 143), stop checkpoint {stop_ckpt} "
                            f"{'present' if stop_ckpt and stop_ckpt.is_file() else 'missing'}")
    elif rc != 0:
        problems.append(f"pretrain exited {rc}")
    if growth is None or growth > args.rss_growth:
        problems.append(f"tree RSS peak grew {growth if growth is None else f'{growth:.1%}'} "
                        f"first -> last quarter (limit {args.rss_growth:.0%})")
    twice = {p: n for p, n in reports.items() if n > 1}
    if twice:
        problems.append(f"reported more than once: {twice}")
    strangers = [p for p in reports if p not in damaged]
    if strangers:
        problems.append(f"reported but not damaged: {strangers}")
    if final_bad != len(reports):
        problems.append(f"data/bad_videos = {final_bad}, files reported = {len(reports)}")

    summary = {
        "command": " ".join(["python", "bench/soak.py", *sys.argv[1:]]),
        "pretrain": " ".join(cmd[2:]), "pretrain_rc": rc, "sigterm_sent": termed,
        "stop_checkpoint": str(stop_ckpt) if stop_ckpt else None, "wall_s": round(wall, 1),
        "steps_done": metrics.step, "steps_planned": steps,
        "machine": {"nproc": os.cpu_count(), "load_avg_seen": [round(x, 2) for x in load],
                    "loadavg_at_end": os.getloadavg()},
        "training_period_s": [round(t0, 1), round(t1, 1)],
        "rss_peak_mib_per_quarter": [peak(q) for q in rss_q],
        "pss_peak_mib_per_quarter": [peak(q) for q in pss_q],
        "rss_growth_first_to_last_quarter": None if growth is None else round(growth, 4),
        "steps_per_s_per_quarter": [
            {"n": len(q), "median": pct(q, 50), "p10": pct(q, 10), "p90": pct(q, 90),
             "min": min(q) if q else None, "max": max(q) if q else None} for q in rate_q],
        "damaged": {p: k for p, k in damaged.items()},
        "reports_per_file": {p: reports.get(p, 0) for p in damaged},
        "files_met": len(reports), "damaged_not_met": [p for p in damaged if p not in reports],
        "data_bad_videos_final": final_bad,
        "problems": problems, "ok": not problems,
    }
    for name, rows, fields in (("soak.csv", samples, list(samples[0])),
                               ("intervals.csv", intervals, ["t", "step", "steps_per_s", "clips_per_s",
                                                             "data_wait_fraction"])):
        text = io.StringIO(newline="")
        w = csv.DictWriter(text, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
        atomic_write(out / name, text.getvalue())
    atomic_write(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    plot(samples, intervals, out / "soak.png",
         f"fastssl pretrain soak: tiny preset, 2 workers, {len(damaged)} damaged of 40 train videos, "
         f"{os.cpu_count()} CPUs")
    print(json.dumps({k: summary[k] for k in ("rss_peak_mib_per_quarter", "rss_growth_first_to_last_quarter",
                                             "reports_per_file", "data_bad_videos_final", "problems")}, indent=1))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
