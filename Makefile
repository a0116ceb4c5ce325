# fastssl: `make demo` runs the whole method on a synthetic dataset; `make test` runs the tests.
# Both build their own virtual environment in .venv on first use (Python >= 3.10).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# The CPU build of torch; on a GPU host, install your CUDA torch into $(VENV) first.
TORCH  ?= torch==2.13.0
DEMO   ?= demo

.PHONY: demo test test-slow clean-demo

$(VENV)/.installed: setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

# Every test not marked slow: under 90 s on a 2-core CPU.
test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m "not slow"

# The slow ones (real training runs, subprocesses, kill-and-resume): under 20 minutes.
test-slow: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m slow

# The paper's claim in small: Scratch and RP side by side on the same synthetic set (10 motion
# classes, 18 training videos each; RP pretrains on other, unlabelled videos of the same motions),
# one RP pretext run and 3 fine-tune seeds each, then a table of both with their spreads (mean ±
# standard error; RP's is over fine-tune seeds of its one checkpoint, marked †). The whole
# Table 2 (SS, PB, PB on an arrow-of-time set, controls, 3 pretext seeds): `fastssl replicate`.
# Its time, estimated from the tiny preset's step rates on an idle 2-core CPU (pretext 0.16 s,
# fine-tune ~0.1 s per step): data ~30 s + RP pretext 1000 x 0.16 = 160 s (+ ~10 s held-out
# scoring) + 6 fine-tunes x (400 x 0.1 + ~10 s evaluation) = 300 s + 4 frozen scorings x ~20 s
# = ~580 s, under 10 minutes.
demo: $(VENV)/.installed
	$(BIN)/fastssl replicate --only scratch,rp --pretext-seeds 1 --seeds 3 --pretext-steps 1000 \
		--finetune-steps 400 --out $(DEMO) --work $(DEMO)/work --force
	@echo "fastssl itself: $(BIN)/fastssl --help   (or: source $(BIN)/activate)"

clean-demo:
	rm -rf $(DEMO)
