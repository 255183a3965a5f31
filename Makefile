# deepgen: `make demo` and `make test` set up .venv themselves (CPU torch pinned by constraints.txt).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt

.PHONY: venv demo test test-slow bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[test]"
	touch $@

# Trains RealNVP on built-in data (two moons, then 8x8 digits); writes samples, plots and test scores.
demo: venv
	$(VENV)/bin/deepgen train configs/realnvp-moons.yaml --steps 1500 --out runs/demo-moons --overwrite
	$(VENV)/bin/deepgen train configs/realnvp-digits.yaml --steps 400 --out runs/demo-digits --overwrite
	$(VENV)/bin/deepgen sample runs/demo-digits -n 100 --out runs/demo-digits/samples-T0.8.png --temperature 0.8
	$(VENV)/bin/deepgen score runs/demo-moons --split test
	@echo "demo runs written to runs/demo-moons and runs/demo-digits (config.yaml, model.safetensors, metrics.csv, scores.json, *.png)"

test: venv
	$(PY) -m pytest -q

test-slow: venv
	$(PY) -m pytest -q -m slow

bench: venv
	$(PIP) -e ".[bench]"
	$(PY) benchmarks/realnvp_vs_peers.py
	$(PY) benchmarks/maf_nsf_vs_peers.py

clean:
	rm -rf runs .pytest_cache
