"""The printed report: one table of components (median, quartiles, memory), the ratios that
matter, and the per-question profile of both CPU paths."""
from __future__ import annotations

LOADER_TARGET = 1.5  # fastssl's best loader vs the baseline, questions/s (issue #4)


def _num(x, digits=4) -> str:
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def _extra(c: dict) -> str:
    """The secondary figure of a component, in words."""
    bits = []
    if "clips_per_s" in c:
        bits.append(f"{_num(c['clips_per_s'].get('median'))} clips/s")
    if "questions_per_s" in c and c["group"] != "loader":
        bits.append(f"{_num(c['questions_per_s'].get('median'))} questions/s")
    if "tflops" in c:
        bits.append(f"{_num(c['tflops'].get('median'), 3)} TFLOP/s")
    if c.get("ranks"):
        bits.append(f"{c['ranks']} x {c['per_rank_batch']} questions, threads {c['threads_per_rank']}"
                    f" + workers {c['workers_per_rank']} per rank ({c['backend']})")
    if "data_wait_fraction" in c and c["data_wait_fraction"].get("median") is not None:
        bits.append(f"data wait {100 * c['data_wait_fraction']['median']:.1f}%")
    if c.get("max_abs_diff_vs_reference") is not None:
        bits.append(f"max|diff| {c['max_abs_diff_vs_reference']:.1e}")
    if c.get("mean_abs_diff_vs_fastssl_pyav") is not None:
        bits.append(f"mean|diff| vs pyav {c['mean_abs_diff_vs_fastssl_pyav']:.1f}")
    return ", ".join(bits)


def _memory(c: dict) -> str:
    rss = c.get("peak_rss_mb")
    if rss is None:
        return "-"
    out = f"{rss:.0f}"
    if c.get("peak_rss_children_mb"):
        out += f" (+{c['peak_rss_children_mb']:.0f}/worker)"
    if c.get("device_peak_allocated_mb") is not None:
        out += f", dev {c['device_peak_allocated_mb']:.0f}"
    return out


def format_report(doc: dict) -> str:
    s = doc["settings"]
    m = doc["machine"]
    gpu = m.get("gpu")
    lines = [
        f"fastssl bench  {doc['date']}",
        f"machine: {m['cpu']} ({m['cpu_cores_usable']} cores), "
        + (f"{gpu['name']}, driver {gpu.get('driver')}" if gpu else "no GPU")
        + f"; torch {m['torch']}, dali {m['dali']}, av {m['av']}, triton {m['triton']}, python {m['python']}",
        f"settings: preset {s['preset']} on {s['device']} ({s['precision']}), batch {s.get('batch_size') or 'preset'}, "
        f"{s['workers']} workers, mode {s['mode']}; dataset {doc['dataset'] and doc['dataset'].get('codec')} "
        f"({doc['dataset'] and doc['dataset'].get('videos')} videos)",
        "",
    ]
    head = f"{'component':<16} {'median':>9} {'unit':<12} {'p25-p75':>17} {'n':>4}  {'peak RSS MB':<24} also"
    lines += [head, "-" * len(head)]
    notes = []
    for name, c in doc["components"].items():
        status = c.get("status")
        if status != "ok":
            from fastssl.benchmarks.runner import short
            why = short(c.get("reason") or c.get("error") or "", 160)
            lines.append(f"{name:<16} {'-':>9} {status:<12}")
            notes.append(f"{name}: {status}: {why}")
            continue
        if name == "profile":
            continue
        q = c.get("metric") or {}
        iqr = f"{_num(q.get('p25'))}-{_num(q.get('p75'))}" if q.get("p25") is not None else "-"
        lines.append(f"{name:<16} {_num(q.get('median')):>9} {q.get('unit', ''):<12} {iqr:>17} "
                     f"{q.get('n', 0):>4}  {_memory(c):<24} {_extra(c)}")
        for note in c.get("notes") or []:
            notes.append(f"{name}: {note}")

    r = doc.get("ratios") or {}
    d = doc.get("ratio_details") or {}
    lines += ["", "ratios (medians, same run)"]

    def ratio(key, text, target=None):
        v = r.get(key)
        if v is None:
            return
        t = ""
        if target is not None:
            t = f"   target >= {target}x: {'met' if v >= target else 'MISSED'}"
        lines.append(f"  {key:<22} {v:8.3g}x  {text}{t}")

    best = d.get("best_loader")
    if d.get("pyav_vs_baseline_per_repeat"):
        per = ", ".join(f"{x:.2f}" for x in d["pyav_vs_baseline_per_repeat"])
        lines.append(f"  (PyAV loader / baseline in each alternating repeat: {per})")
    ratio("loader_vs_baseline", f"fastssl's best loader ({best}) / baseline, questions/s", LOADER_TARGET)
    ratio("e2e_vs_model", "real pretrain loop / model-only, clips/s"
          + (f" (data wait {100 * d['e2e_data_wait_fraction']:.1f}%)"
             if d.get("e2e_data_wait_fraction") is not None else ""))
    ratio("e2e_finetune_vs_model", "real finetune loop / model-only, clips/s")
    ratio("loader_vs_model", "best loader / model-only, questions/s (> 1: the loader can feed it)")
    ratio("baseline_vs_model", "baseline / model-only, questions/s")
    ratio("dali_vs_pyav", "DALI loader / PyAV loader, questions/s")
    ratio("torchcodec_vs_pyav_decode", "torchcodec / fastssl's PyAV decoder, windows/s, one process")
    ratio("decord_vs_pyav_decode", "decord / fastssl's PyAV decoder, windows/s, one process")
    ratio("pyav_1thread_vs_baseline", "PyAV loader with a 1-thread main process / baseline, questions/s")
    for key, name in (("dp_2_vs_1", "dp.2"), ("dp_gpus_vs_1", "dp.gpus")):
        ranks = d.get(f"{name.replace('.', '_')}_ranks")
        if ranks:
            ratio(key, f"torchrun pretrain, {ranks} processes / 1, clips/s, same global batch "
                       f"(efficiency {100 * d[name.replace('.', '_') + '_efficiency']:.0f}%)")
    ratio("op_triton_vs_copy", "Triton clip builder GB/s / device copy GB/s")
    ratio("op_reference_vs_copy", "torch reference clip builder GB/s / device copy GB/s")
    ratio("op_dali_vs_copy", "DALI sequence_rearrange+crop_mirror_normalize GB/s / device copy GB/s")

    p = doc["components"].get("profile")
    if p and p.get("status") == "ok":
        lines += ["", f"where a question's CPU time goes (ms, one process, one thread, "
                      f"{p['questions']} questions)"]
        for label, key, total in (("fastssl PyAV", "fastssl_ms_per_question", "fastssl_total_ms_real_code"),
                                  ("baseline", "baseline_ms_per_question", "baseline_total_ms_real_code")):
            stages = p[key]
            parts = ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
            lines.append(f"  {label:<13} {sum(stages.values()):6.1f} = {parts}")
            lines.append(f"  {'':<13} {p[total]:6.1f}   (the real code, timed as a whole)")
        bq = p["bytes_per_question"]
        ho = p["handover_only_questions_per_s"]
        lines.append("  hand-over to the main process, per question: "
                     + "; ".join(f"{k} {bq[k] / 1e6:.2f} MB, ceiling {_num(ho[k].get('median'))} questions/s"
                                 for k in bq))
        lines.append(f"  fastssl files already open (LRU of 8 per worker): {100 * p['fastssl_open_file_hits']:.0f}%")
    if notes:
        lines += ["", "notes"] + [f"  {n}" for n in notes]
    return "\n".join(lines)
