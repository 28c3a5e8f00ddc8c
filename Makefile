# Quick start:  make demo   (sets up .venv on first use, runs the main job)
#               make test   (sets up .venv on first use, runs the default test suite)
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SPEC    := examples/cspbbr3/ccdgen.toml
DATA    := examples/cspbbr3/data
OUT     := out
MODELS  := models

.PHONY: setup demo test test-slow bench clean

setup: $(STAMP)

# --system-site-packages reuses what the machine already has; torch comes from the local
# CPU wheel (an unpinned torch could pull a multi-GB CUDA build).
$(STAMP): pyproject.toml
	$(PY) -m venv --system-site-packages $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test,ray]"
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p $(OUT)
	@echo "== 1. the CsPbBr3 clusters: point groups, irreps, CCDs, invariants"
	$(BIN)/ccdgen inspect $(SPEC)
	$(BIN)/ccdgen inspect $(SPEC) --order 2 --cluster PbBr6
	$(BIN)/ccdgen inspect $(SPEC) --order 4 --json > $(OUT)/inspect.json
	$(BIN)/ccdgen inspect $(SPEC) --order 2 --cluster PbBr6 --cluster triplet --format latex > $(OUT)/invariants_order2.tex
	$(BIN)/ccdgen modes $(SPEC) --cluster PbBr6 --cluster triplet -o $(OUT)/modes
	$(BIN)/ccdgen modes examples/clusters/tetrahedron.xyz -o $(OUT)/modes
	@echo "== 2. compile the feature kernels and featurize the bundled data"
	$(BIN)/ccdgen compile $(SPEC) --order 4
	$(BIN)/ccdgen featurize $(SPEC) $(DATA)/train.extxyz.gz --order 2 -o $(OUT)/features_order2.npz
	@echo "== 3. train the linear cluster expansion (Eq. 2) and the paper's best model (order 2, 8 tanh)"
	$(BIN)/ccdgen train $(SPEC) $(DATA)/train.extxyz.gz --model linear --order 2 -o $(MODELS)/cspbbr3_linear.ckpt --plots $(OUT)/plots/linear
	$(BIN)/ccdgen train $(SPEC) $(DATA)/train.extxyz.gz --model cluster --order 2 --hidden 8 -o $(MODELS)/cspbbr3.ckpt --plots $(OUT)/plots/cluster
	@echo "== 4. evaluate on the relaxed phases and the PES cuts"
	$(BIN)/ccdgen evaluate $(MODELS)/cspbbr3.ckpt $(DATA)/endpoints.extxyz $(DATA)/cuts.extxyz
	$(BIN)/ccdgen cuts $(MODELS)/cspbbr3.ckpt --reference $(DATA)/cuts.extxyz -o $(OUT)/cuts
	@echo "== 5. model selection: the paper's k-fold cross-validation study at a small scale"
	$(BIN)/ccdgen cv examples/cspbbr3/ccdgen_8pairs.toml $(DATA)/train.extxyz.gz --index :600 \
	    --grid examples/cspbbr3/grid.toml -o $(OUT)/cv
	@echo "wrote $(OUT)/inspect.json, $(OUT)/invariants_order2.tex, $(OUT)/modes/*.png, $(OUT)/features_order2.npz,"
	@echo "      $(OUT)/plots/{linear,cluster}/*.png, $(OUT)/cuts/cuts.{png,json}, $(OUT)/cv/{results.csv,cv.png,best.ckpt},"
	@echo "      $(MODELS)/cspbbr3_linear.ckpt and $(MODELS)/cspbbr3.ckpt"

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/crystal.py
	$(BIN)/python benchmarks/models.py
	$(BIN)/python benchmarks/mapping.py
	$(BIN)/python benchmarks/data_io.py
	$(BIN)/python benchmarks/sampling.py

clean:
	rm -rf $(VENV) $(OUT) $(MODELS)
