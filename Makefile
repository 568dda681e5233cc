# Every target bootstraps what it needs: a .venv, the Cython build, system libraries.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYX    := $(shell find src -name '*.pyx' -o -name '*.pxd')

.PHONY: demo test bench lint typecheck build sysdeps flatbuffers clean

# The networked demo: a cubes server and two clients over real QUIC on 127.0.0.1 for about 10 s,
# a live table per client, exit 0 only when both converged (`theta demo --local`: the core demo).
demo: build
	$(BIN)/theta demo

test: build
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

# Each suite writes its JSON under benchmarks/results/ and exits non-zero when it misses a target
# (bandwidth: a regression over 5% against the previous run).
bench: build
	$(BIN)/python benchmarks/ecs_bench.py --json --out benchmarks/results/ecs.json
	$(BIN)/python benchmarks/commandlog_bench.py --out benchmarks/results/commandlog.json
	$(BIN)/python benchmarks/bandwidth_bench.py
	$(BIN)/python -m pytest benchmarks/test_bench_net_rtt.py benchmarks/test_bench_net_scaling.py \
	  -p no:cacheprovider --benchmark-json benchmarks/results/net.json

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
