"""The registry of benchmark components: name -> function(spec) -> JSON-able dict whose
"metric" entry is the headline summary (median, quartiles, ...).

Every component runs in a process of its own (`run_component.py`), so imports, threads and peak
memory of one never leak into the next. All of them use the same config (preset + overrides),
the same dataset and, where they read videos, the same `PretextPlan` and key stream, hence the
same windows, crops, flips and questions.

    loader_bench.py   loader.*        questions/s of each loader, clip builder included
    training.py       model.*, e2e.*  training steps on device tensors; the real loops
    op_bench.py       op.*            the clip builder against the copy bandwidth
    decoding.py       peer.*, profile peer decoders; where a question's CPU time goes
"""
from __future__ import annotations


def _loader(which, **kw):
    from fastssl.benchmarks.loader_bench import loader
    return lambda spec: loader(spec, which, **kw)


def _training(fn, which):
    def run(spec):
        from fastssl.benchmarks import training
        return getattr(training, fn)(spec, which)
    return run


def _op(fn, *args):
    def run(spec):
        from fastssl.benchmarks import op_bench
        return getattr(op_bench, fn)(spec, *args)
    return run


def _decoding(fn, *args):
    def run(spec):
        from fastssl.benchmarks import decoding
        return getattr(decoding, fn)(spec, *args)
    return run


COMPONENTS = {
    "loader.pyav": _loader("pyav"),
    "loader.dali": _loader("dali"),
    "loader.baseline": _loader("baseline"),
    "loader.pyav-1t": _loader("pyav", main_threads=1),
    "model.pretext": _training("model", "pretext"),
    "model.finetune": _training("model", "finetune"),
    "e2e.pretrain": _training("e2e", "pretrain"),
    "e2e.finetune": _training("e2e", "finetune"),
    "op.copy": _op("copy_bandwidth"),
    "op.reference": _op("op", "reference"),
    "op.triton": _op("op", "triton"),
    "op.dali": _op("op_dali"),
    "peer.torchcodec": _decoding("peer", "torchcodec"),
    "peer.decord": _decoding("peer", "decord"),
    "peer.pyav": _decoding("peer", "pyav"),
    "profile": _decoding("profile"),
}
