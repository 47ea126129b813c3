# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test
demo: $(VENV)/.installed
	$(VENV)/bin/dgss demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

# torch==2.13.0 first: it is the CPU build on disk; any looser request pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $@
