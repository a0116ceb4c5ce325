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

# A synthetic dataset (10 motion classes), RP pretraining, fine-tuning from it, evaluation.
# About 4 minutes on a 2-core CPU; TensorBoard logs under $(DEMO)/runs.
demo: $(VENV)/.installed
	$(BIN)/fastssl synth $(DEMO)/data --size 128x96 --force
	$(BIN)/fastssl pretrain --data $(DEMO)/data --mode rp --out $(DEMO)/runs/rp --force
	$(BIN)/fastssl finetune --data $(DEMO)/data --init $(DEMO)/runs/rp/checkpoint.pt --out $(DEMO)/runs/rp-finetune --force
	$(BIN)/fastssl evaluate --data $(DEMO)/data --checkpoint $(DEMO)/runs/rp-finetune/checkpoint.pt --out $(DEMO)/runs/rp-eval --force
	@echo "TensorBoard: $(BIN)/tensorboard --logdir $(DEMO)/runs"
	@echo "fastssl itself: $(BIN)/fastssl --help   (or: source $(BIN)/activate)"

clean-demo:
	rm -rf $(DEMO)
