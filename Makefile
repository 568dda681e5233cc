# Every target bootstraps what it needs: a .venv, the Cython build, system libraries.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYX    := $(shell find src -name '*.pyx' -o -name '*.pxd')

.PHONY: demo test bench lint typecheck build sysdeps flatbuffers clean

# The networked demo: a cubes server and two clients over real QUIC on 127.0.0.1 for about 10 s,
# a live table per client, exit 0 only when both converged (`theta demo --local`: the core demo);
# then one stereo frame of the same scene, rendered headless (EGL), to look at.
demo: build
	$(BIN)/theta demo
	$(BIN)/theta render --scene cubes --frames 1 --out build/demo
	@echo "demo: the cubes scene in stereo (left and right eye): build/demo/frame_0000.png"

test: build
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

# The pytest-benchmark suites under benchmarks/ (`make test` never runs them): every
# benchmarks/test_<suite>.py, or BENCH_SUITES="ecs bandwidth". Each suite keeps
# its runs under benchmarks/results/history/<suite>/, copies the latest to
# benchmarks/results/<suite>-benchmark.json (pytest-benchmark's format), and
# fails when a benchmark got slower than the previous saved run by more than BENCH_FAIL
# (pytest-benchmark's --benchmark-compare-fail). The bandwidth suite also writes bandwidth.json
# and .png and fails on a bandwidth regression over 5%. Every suite runs even if one fails.
BENCH_SUITES ?= $(patsubst benchmarks/test_%.py,%,$(wildcard benchmarks/test_*.py))
BENCH_FAIL   ?= min:25%
BENCH_ARGS   ?=
bench: build
	@status=0; for suite in $(BENCH_SUITES); do \
	  hist=benchmarks/results/history/$$suite; compare=; \
	  if ls $$hist/*/*.json >/dev/null 2>&1; then \
	    compare="--benchmark-compare --benchmark-compare-fail=$(BENCH_FAIL)"; fi; \
	  echo "== $$suite"; \
	  $(BIN)/python -m pytest benchmarks/test_$$suite.py -o addopts= -v -p no:cacheprovider \
	    --benchmark-storage=file://$$hist --benchmark-autosave $$compare \
	    --benchmark-columns=min,median,rounds --benchmark-sort=name $(BENCH_ARGS) \
	    || status=1; \
	  cp "$$(ls -t $$hist/*/*.json | head -1)" benchmarks/results/$$suite-benchmark.json || status=1; \
	done; exit $$status

sysdeps:
	@bash .ci/sysdeps

$(STAMP): pyproject.toml setup.py | sysdeps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "setuptools>=69" wheel "Cython>=3.0" "numpy>=1.26"
	$(BIN)/python -m pip install -q --no-build-isolation -e ".[all,dev]"
	touch $@

# Rebuild compiled modules whose .pyx/.pxd changed since the install.
build: $(STAMP) $(VENV)/.built

$(VENV)/.built: $(STAMP) $(PYX)
	cd . && $(BIN)/python setup.py -q build_ext --inplace -j 2
	touch $@

clean:
	rm -rf build $(VENV) src/*/*.c src/*/*.so src/*/*/*.c src/*/*/*.so

# Regenerate the checked-in FlatBuffers Python code (flatc 2.0.8). flatc writes every namespace
# level, so generate into a scratch folder and copy only the generated packages.
flatbuffers: sysdeps
	rm -rf build/flatc && mkdir -p build/flatc
	flatc --python -o build/flatc schemas/component_manifest.fbs schemas/network.fbs
	for pkg in manifest network; do \
	  rm -rf src/theta_ecs/_generated/$$pkg && \
	  cp -r build/flatc/theta_ecs/_generated/$$pkg src/theta_ecs/_generated/; \
	done
