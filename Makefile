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

# The npm package edgegen-runtime (js/): its dev dependencies (ajv for `npm pack`, typescript,
# onnxruntime-node/-web for its tests); the examples link to it (file:../../js). --ignore-scripts:
# onnxruntime-node's install script would download GPU binaries; its CPU ones ship in the package.
js/node_modules: js/package-lock.json
	cd js && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

examples/node/node_modules: examples/node/package-lock.json js/node_modules
	cd examples/node && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

examples/web/node_modules: examples/web/package-lock.json js/node_modules
	cd examples/web && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

setup: $(BIN)/edgegen js/node_modules examples/node/node_modules examples/web/node_modules

demo: setup
	$(BIN)/edgegen demo --out runs/demo --force

# The layer contracts first (a violation fails fast and says which import), then the suite.
test: setup
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q --durations=30

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs/demo js/node_modules examples/*/node_modules .pytest_cache
