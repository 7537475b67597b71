# repsim -- two commands for a new user: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
REPSIM := $(BIN)/repsim
S      := sample_data
OUT    := demo-output

# every extra, so the whole suite (capture, dask, catalog) runs; torch 2.13.0 is the CPU build
EXTRAS := test,plot,lint,torch,hf,dask,catalog
TORCH  := torch==2.13.0

.PHONY: demo test lint bench bench-scale sample-data readme venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]"
	@touch $(STAMP)

test: venv
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check repsim_cli
	$(BIN)/mypy

demo: venv
	@mkdir -p $(OUT)
	@echo "== what is in a file ==";                     $(REPSIM) inspect $(S)/mlp_seed0.h5
	@echo "== two seeds of one architecture ==";         $(REPSIM) compare $(S)/mlp_seed0.h5 $(S)/mlp_seed1.h5 -m cka -m cca -m matched -m meanmax
	@echo "== two architectures ==";                      $(REPSIM) compare $(S)/mlp_seed0.h5 $(S)/wide_seed0.h5 -m cka -m cca -m matched -m meanmax
	@echo "== against chance (permutation null, bootstrap interval) =="; \
	  $(REPSIM) compare $(S)/mlp_seed0.h5:layers/3 $(S)/wide_seed0.h5:layers/3 -m cka --permutations 999 --bootstrap 500 --seed 1 --chance
	@echo "== the same pair streamed from disk in row blocks (the route for files larger than memory) =="; \
	  $(REPSIM) compare $(S)/mlp_seed0.h5 $(S)/wide_seed0.h5 -m cka -m cca -m procrustes --stream --block-rows 100
	@echo "== layer x layer grid ==";                     $(REPSIM) heatmap $(S)/mlp_seed0.h5 $(S)/mlp_seed1.h5 --annotate -o $(OUT)/heatmap_mlp_seed0_vs_seed1.png
	@echo "(image: $(OUT)/heatmap_mlp_seed0_vs_seed1.png)"
	@echo "== do two architectures differ more than two seeds? =="; \
	  $(REPSIM) test --group mlp $(S)/mlp_seed0.h5 $(S)/mlp_seed1.h5 $(S)/mlp_seed2.h5 --group wide $(S)/wide_seed0.h5 $(S)/wide_seed1.h5
	@echo "== which inputs the network treats as similar (gradient cosine) =="; \
	  $(REPSIM) inputsim $(S)/grads.h5 --query 0,1,2,3,4 --top-k 5 --train $(S)/grads.h5:train_grads
	@echo "== the same from Python: import repsim_cli as rs =="; \
	  $(BIN)/python -W ignore -c "import repsim_cli as rs; print(rs.compare('$(S)/mlp_seed0.h5', '$(S)/mlp_seed1.h5', ['cka', 'shape:alpha=0.5', 'knn:stat=jaccard']))"

bench: venv
	$(BIN)/python bench/run_all.py

# the moment route at scale: N=1e6 x F=512 float32 layers as HDF5 and zarr (temporary files, removed)
bench-scale: venv
	$(BIN)/python bench/bench_moments11.py --n 1000000 --f 512 --layers 4

sample-data: venv
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[sampledata]"
	$(BIN)/python $(S)/make_sample_data.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .hypothesis build *.egg-info

readme: venv
	$(BIN)/python docs/build_readme.py
