"""`fastssl bench`: throughput of every part of the data path, side by side, in one run.

    fastssl bench --quick                 # < 2 minutes on a 2-core CPU
    fastssl bench --preset paper --json runs/bench.json --time-budget 600   # a GPU host

Modules, one concern each:
    stats.py          timing loop (warm-up, then samples until a time target) and median/spread
    machine.py        what the numbers were measured on (CPU, GPU, driver, library versions)
    baseline.py       the loader people write today (PyAV + to_ndarray + CPU float clips)
    components.py     the one registry: component name -> group, title, needs, function(spec)
    common.py         what components share (config and dataset via run_setup, sync, timed loop, plan)
    loader_bench.py   loader-only: questions/s of each loader, clip builder included
    training.py       model-only (training steps on device tensors) and end-to-end (the real loops)
    op_bench.py       the clip-builder op against the device's copy bandwidth
    decoding.py       peer decoders on the same windows; the per-question profile of both CPU paths
    parallel.py       data parallel: `fastssl pretrain` under torchrun with 1, 2 (or one per GPU)
                      processes on the same global batch, clips/s from its metrics.jsonl
    isolation.py      each component in a process of its own (forkserver), killed past its time
    run_component.py  runs one component in a process of its own and reports its JSON (peak RSS
                      per component needs a process of its own: ru_maxrss only ever grows)
    runner.py         the synthetic dataset, the component processes under a time budget, the
                      ratios and the JSON file
    report.py         the printed table

Nothing here imports click; the command is `fastssl/cli_bench.py`.
"""
