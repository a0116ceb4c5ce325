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
# classes, 4 training videos each; RP pretrains on other, unlabelled videos of the same motions),
# two fine-tune seeds each, then a table of both (its time on 2 cores: README); the
# whole Table 2 (SS, PB, PB on an arrow-of-time set, controls): `fastssl replicate`.
demo: $(VENV)/.installed
	$(BIN)/fastssl replicate --only scratch,rp --pretext-seeds 1 --seeds 2 --out $(DEMO) --work $(DEMO)/work --force
	@echo "fastssl itself: $(BIN)/fastssl --help   (or: source $(BIN)/activate)"

clean-demo:
	rm -rf $(DEMO)
