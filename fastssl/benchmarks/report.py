"""The printed report: one table of components (median, quartiles, memory), the ratios, and the
host headroom by stage."""
from __future__ import annotations


def _num(x, digits=4) -> str:
    return "-" if x is None else f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.{digits}g}"


def short(text, limit: int = 200) -> str:
    """The first line of an error, cut to `limit` characters (the JSON keeps it whole)."""
    line = (str(text or "").strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[:limit - 3] + "..."


def one_line(c: dict) -> str:
    if c.get("status") != "ok":
        return f"{c.get('status')}: {short(c.get('reason') or c.get('error'))}"
    m = c["metric"]
    return f"{_num(m['median'])} {m['unit']} (n={m['n']}); peak RSS {c['peak_rss_mb']} MB; {c.get('wall_seconds')} s"


def _also(c: dict) -> str:
    """A component's secondary figures, in words."""
    bits = [f"{_num(c[k]['median'])} {c[k]['unit']}" for k in ("clips_per_s", "questions_per_s", "tflops")
            if k in c and not (k == "questions_per_s" and c["group"] == "loader")]
    if c.get("ranks"):
        bits.append(f"{c['ranks']} x {c['per_rank_batch']} questions ({c['backend']})")
    if c.get("data_wait_fraction"):
        bits.append(f"data wait {100 * c['data_wait_fraction']['median']:.1f}%")
    if c.get("max_abs_diff_vs_reference") is not None:
        bits.append(f"max|diff| {c['max_abs_diff_vs_reference']:.1e}")
    if "compile_seconds" in c:
        bits.append(f"eager {_num(c['eager']['median'])} clips/s, compiling took {c['compile_seconds']:.0f} s")
    if "gpu_ms_per_step" in c:
        bits.append(f"GPU {c['gpu_ms_per_step']:.3g} ms/step -> host/GPU {c['host_vs_gpu']:.2f}")
    if "clips_per_pass" in c:
        bits.append(f"{c['clips_per_pass']} clips of {c['videos']} videos per pass")
    gap = c.get("chunk_boundaries") or {}
    bits += [f"chunk gap {gap['max_gap_s'] * 1e3:.0f} ms at step {gap['at_step']} vs median step "
             f"{gap['median_step_s'] * 1e3:.0f} ms" if gap.get("reached") else gap.get("note", "")] if gap else []
    return ", ".join(bits)


def format_report(doc: dict) -> str:
    from fastssl.benchmarks.machine import describe
    from fastssl.benchmarks.runner import RATIOS
    s, ds = doc["settings"], doc["dataset"] or {}
    head = f"{'component':<19} {'median':>9} {'unit':<12} {'p25-p75':>17} {'n':>4}  {'peak RSS MB':<18} also"
    lines = [f"fastssl bench  {doc['date']}", f"machine: {describe(doc['machine'])}",
             f"preset {s['preset']} on {s['device']} ({s['precision']}), batch {s.get('batch_size') or 'preset'}, "
             f"{s['workers']} workers, mode {s['mode']}; dataset {ds.get('codec')} ({ds.get('videos')} videos)",
             "", head, "-" * len(head)]
    notes = []
    for name, c in doc["components"].items():
        if c.get("status") != "ok":
            lines.append(f"{name:<19} {'-':>9} {c.get('status'):<12}")
            notes.append(f"{name}: {c.get('status')}: {short(c.get('reason') or c.get('error'), 160)}")
            continue
        notes += [f"{name}: {n}" for n in c.get("notes") or []]
        q = c["metric"]
        iqr = f"{_num(q.get('p25'))}-{_num(q.get('p75'))}" if q.get("p25") is not None else "-"
        rss = f"{c['peak_rss_mb']:.0f}" + (f" (+{c['peak_rss_children_mb']:.0f}/worker)"
                                           if c.get("peak_rss_children_mb") else "")
        lines.append(f"{name:<19} {_num(q.get('median')):>9} {q['unit']:<12} {iqr:>17} {q.get('n', 0):>4}  {rss:<18} "
                     + _also(c))

    r, d = doc.get("ratios") or {}, doc.get("ratio_details") or {}
    lines += ["", "ratios (medians, same run)"]
    extra = {"loader_vs_baseline": f" (best: {d.get('best_loader')})",
             "e2e_vs_model": f" (data wait {100 * (d.get('e2e_data_wait_fraction') or 0):.1f}%)"}
    for key, (_, _, text, *target) in RATIOS.items():
        if r.get(key) is None:
            continue
        text += extra.get(key, "")
        if target:
            op, goal = target[0]
            met = r[key] >= goal if op == ">=" else r[key] <= goal
            text += f"   target {op} {goal}: {'met' if met else 'MISSED'}"
        lines.append(f"  {key:<27} {r[key]:8.3g}x  {text}")

    host = {n: c for n, c in doc["components"].items() if c.get("status") == "ok" and "stages_ms" in c}
    if host:
        lines += ["", "host headroom at the paper batch: training-thread CPU ms per step, by stage; "
                      f"GPU ms at {next(iter(host.values()))['gpu_assumption']}"]
    for name, c in host.items():
        stages, left = (", ".join(f"{k} {v:.2f}" for k, v in c[k2].items() if v) for k2 in ("stages_ms", "left_out_ms"))
        lines.append(f"  {name:<19} {c['metric']['median']:6.2f} = {stages}"
                     + (f"; CPU only, left out: {left}" if left else "")
                     + (f"; of the hand-over, one frame copy (CPU only; GPU->GPU on CUDA) "
                        f"{c['frame_copy_in_handover_ms']:.1f}" if c.get("frame_copy_in_handover_ms") else "")
                     + f"; sampler + questions (outside this thread) {c['sampler_ms_per_batch']:.1f} per batch")
    return "\n".join(lines + (["", "notes"] + [f"  {n}" for n in notes] if notes else []))
