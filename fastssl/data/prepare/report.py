"""OUT/prepare_report.csv (every source not prepared, with its reason) and the resume log."""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from fastssl.files import atomic_write

REPORT = "prepare_report.csv"
DONE_LOG = ".prepare_done.jsonl"   # one verified output per line; a resumed run skips these
REPORT_FIELDS = ["source", "kind", "reason"]


def write_report(out: Path, rows: list[dict]) -> Path:
    """rows: dicts with source, kind ('bad' or 'unlisted') and reason. Written even when empty,
    so a clean run says so."""
    text = io.StringIO(newline="")  # csv writes its own "\r\n"; no newline translation on top
    writer = csv.DictWriter(text, fieldnames=REPORT_FIELDS)
    writer.writeheader()
    for row in sorted(rows, key=lambda r: (r["kind"], r["source"])):
        writer.writerow({k: row[k] for k in REPORT_FIELDS})
    return atomic_write(out / REPORT, text.getvalue().encode())


def read_done(out: Path) -> dict[str, dict]:
    """src -> result of a verified output that still exists (the last line for a source wins).
    A line cut short by a kill is ignored: that video is simply done again."""
    done = {}
    try:
        lines = (out / DONE_LOG).read_text().splitlines()
    except OSError:
        return done
    for line in lines:
        try:
            r = json.loads(line)
            if (out / "videos" / r["rel"]).is_file():
                done[r["src"]] = r
        except (ValueError, KeyError, TypeError):
            continue
    return done


def mend_done_log(out: Path) -> str:
    """The log's path, after ending a line a kill cut short (so the next one parses)."""
    path = out / DONE_LOG
    if path.is_file() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
        with open(path, "a") as f:
            f.write("\n")
    return str(path)


def append_done(log: str, result: dict) -> None:
    """One line, one write() on an O_APPEND file (workers append concurrently), fsynced."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(result) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
