"""`fastssl bench`: throughput of every part of the data path, side by side, in one run.

    fastssl bench --quick                 # < 2 minutes on a 2-core CPU
    fastssl bench --preset paper --json runs/bench.json --time-budget 600   # a GPU host

Modules, one concern each:
    stats.py          timing loop (warm-up, then samples until a time target) and median/spread
    machine.py        what the numbers were measured on (CPU, GPU, driver, library versions)
    baseline.py       the loader people write today (PyAV + to_ndarray + CPU float clips)
    components.py     one function per measured component (loader, model, e2e, op, peers, profile)
    run_component.py  runs one component in a fresh process and prints its JSON (peak RSS per
                      component needs a process of its own: ru_maxrss only ever grows)
    runner.py         the synthetic dataset, the subprocesses under a time budget, the ratios,
                      the table and the JSON file

Nothing here imports click; the command is `fastssl/cli_bench.py`.
"""
