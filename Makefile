# The two quickstart commands: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch 2.14.1 + torchvision 0.29.1 are the pair that import together (a newer torch with an
# older torchvision fails with "operator torchvision::nms does not exist").
TORCH  ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test lint clean

# Both distributions editable: the runtime (runtime/, torch-free) and the toolchain (src/).
$(BIN)/edgegen: pyproject.toml runtime/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ./runtime -e ".[serve,ray,sign,openvino,dev]"
	touch $@

examples/node/node_modules: examples/node/package-lock.json
	cd examples/node && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

examples/web/node_modules: examples/web/package-lock.json
	cd examples/web && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

setup: $(BIN)/edgegen examples/node/node_modules examples/web/node_modules

demo: setup
	$(BIN)/edgegen demo --out runs/demo --force

# The layer contracts first (a violation fails fast and says which import), then the suite.
test: setup
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q --durations=30

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs/demo examples/*/node_modules .pytest_cache
