# Two entry points for a fresh machine: `make run` (set up, provision, open the app on the sample
# data) and `make test` (set up, provision, run the whole suite). Both create or reuse .venv.
#
#   make run JETSON=1   on a Jetson: the venv sees JetPack's own torch (system site packages) and
#                       that torch is pinned as installed, so pip never replaces it.
#   make run TORCH_SPEC='torch==2.5.1'   to choose another torch build on a desktop.

PYTHON ?= python3
VENV ?= .venv
# The CPU machines this project is built and tested on carry this exact wheel; a range here would
# let pip pull a newer multi-GB CUDA build instead.
TORCH_SPEC ?= torch==2.13.0
DATASET ?= sample_data/waterworks/train.jsonl

BIN := $(VENV)/bin
STAMP := $(VENV)/.forge-installed

.PHONY: run test lint setup models tools llama clean-venv

run: models
	$(BIN)/forge-tui --dataset $(DATASET)

test: models tools lint
	$(BIN)/python -m pytest

# The project's own lint and type settings (pyproject.toml), as CI runs them: part of `make test`.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

# The end-to-end console tests drive the app in tmux, and `forge-tui serve` in chromium (Playwright
# drives this system browser; it never downloads one). Installed here where we may (root with apt, as
# on CI); anywhere else the message says what to run. Each command is named as its Debian package.
TOOLS := tmux chromium
tools:
	@missing="$$(for tool in $(TOOLS); do command -v $$tool >/dev/null || printf '%s ' $$tool; done)"; missing="$${missing% }"; \
	[ -z "$$missing" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "the end-to-end console tests need $$missing: sudo apt-get install $$missing"; exit 1; fi; }

setup: $(STAMP)

models: $(STAMP)
	$(BIN)/forge-tui models fetch

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ needed"' || exit 1
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "Python's venv module is missing. On Debian/Ubuntu: sudo apt-get install -y python3-venv"; exit 1; }
	$(PYTHON) -m venv $(if $(JETSON),--system-site-packages) $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
ifdef JETSON
	$(BIN)/python -c 'import torch; print("torch==" + torch.__version__)' > $(VENV)/jetpack-torch.txt
	$(BIN)/python -m pip install -c $(VENV)/jetpack-torch.txt -e ".[dev]"
else
	$(BIN)/python -m pip install "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -e ".[dev]"
endif
	touch $@

# llama-cpp-python, for benchmarks/gguf_agreement.py (not needed by the app or the tests): built from
# source, about 12 minutes on 2 cores, then pip caches the wheel. Portable CPU flags: the native build
# crashes on VMs that report CPU features they cannot run. On a Jetson: LLAMA_CMAKE_ARGS=-DGGML_CUDA=on
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
llama: setup
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install -q -e ".[dev,llama]"

clean-venv:
	rm -rf $(VENV)
