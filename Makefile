# Quick start:  make demo   (sets up .venv on first use, runs the main job)
#               make test   (sets up .venv on first use, runs the default test suite)
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SPEC    := examples/cspbbr3/ccdgen.toml
OUT     := out

.PHONY: setup demo test test-slow bench clean

setup: $(STAMP)

# --system-site-packages reuses what the machine already has; torch comes from the local
# CPU wheel (an unpinned torch could pull a multi-GB CUDA build).
$(STAMP): pyproject.toml
	$(PY) -m venv --system-site-packages $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p $(OUT)
	$(BIN)/ccdgen inspect $(SPEC)
	$(BIN)/ccdgen inspect $(SPEC) --order 2 --cluster PbBr6 --basis irreps
	$(BIN)/ccdgen inspect $(SPEC) --order 4 --json > $(OUT)/inspect.json
	$(BIN)/ccdgen inspect $(SPEC) --order 2 --cluster PbBr6 --cluster triplet --format latex --basis irreps > $(OUT)/invariants_order2.tex
	$(BIN)/ccdgen modes $(SPEC) --cluster PbBr6 --cluster triplet -o $(OUT)/modes
	$(BIN)/ccdgen modes examples/clusters/tetrahedron.xyz -o $(OUT)/modes
	$(BIN)/ccdgen compile $(SPEC) --order 4
	@echo "wrote $(OUT)/inspect.json, $(OUT)/invariants_order2.tex and $(OUT)/modes/*.png"

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(OUT)
