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

# The first five minutes: one model of each family (flow, autoregressive, VAE, GAN) trained on the built-in 8x8
# digits for the same 1000 steps by one `deepgen compare`; one table and one picture of their samples side by side.
# One torch thread unless OMP_NUM_THREADS is set: these small models gain little from a second thread, and when
# other processes share the cores torch's threads wait on each other (RealNVP trained 10x slower with 2 threads).
DEMO_MODELS := realnvp:channels=16,made,vae,gan:hidden=64:minibatch_discrimination=4
demo: venv
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(VENV)/bin/deepgen compare --data digits --models $(DEMO_MODELS) \
		--steps 1000 --out runs/demo --overwrite
	@echo "compare page: runs/demo/samples.png (samples side by side, each titled with its test NLL)"
	@echo "table:        runs/demo/compare.md (and compare.csv); one run directory per model under runs/demo/"

test: venv
	$(PY) -m pytest -q

test-slow: venv
	$(PY) -m pytest -q -m slow

bench: venv
	$(PIP) -e ".[bench]"
	$(PY) benchmarks/train_path.py
	$(PY) benchmarks/realnvp_vs_peers.py
	$(PY) benchmarks/maf_nsf_vs_peers.py
	$(PY) benchmarks/vae_vs_peers.py
	$(PY) benchmarks/sampling.py

clean:
	rm -rf runs .pytest_cache

# deepgen's image flows and VAE on a GPU at batches 256..4096 under bf16 autocast: steps/s, FLOP/s and the share of the
# GPU's peak (benchmarks/README.md); on a machine without CUDA it says so in one line and exits 0.
.PHONY: bench-gpu
bench-gpu: venv
	$(PY) benchmarks/gpu.py
