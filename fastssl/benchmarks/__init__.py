"""`fastssl bench`: throughput of every part of the data path, side by side, in one run.

    fastssl bench --quick                 # a few minutes on a 2-core CPU
    fastssl bench --preset paper --json runs/bench.json --time-budget 600   # a GPU host

Modules, one concern each (nothing here imports click; the command is `fastssl/cli_bench.py`):
    registry.py      the one registry: component -> group, title, needs, function(spec)
    runner.py        the dataset, the components under a time budget, the ratios, the JSON;
                     isolation.py (a process per component), report.py, stats.py, machine.py
    common.py        what components share: config and dataset via run_setup, sync, device inputs
    baseline.py      the loader people write today (PyAV + to_ndarray + CPU float clips)
    loader_bench.py  questions/s of each loader, clip builder included; DALI's chunk-boundary gap
    model.py         training steps on device tensors, eager or compiled; FLOPs per sample
    runs.py          the real code timed: run.run (end to end), torchrun (data parallel), evaluation
    host.py          the training thread's CPU per step at the paper batch vs the model's GPU time
    op_bench.py      the clip-builder op against the device's copy bandwidth
"""
