# repsim -- two commands for a new user: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
REPSIM := $(BIN)/repsim
S      := sample_data

.PHONY: demo test bench sample-data venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test,plot]"
	@touch $(STAMP)

test: venv
	$(BIN)/python -m pytest -q

demo: venv
	$(REPSIM) inspect $(S)/mlp_seed0.h5
	$(REPSIM) compare $(S)/mlp_seed0.h5 $(S)/mlp_seed1.h5 -m cka -m matched -m meanmax
	$(REPSIM) compare $(S)/mlp_seed0.h5 $(S)/wide_seed0.h5 -m cka -m matched -m meanmax
	$(REPSIM) heatmap $(S)/mlp_seed0.h5 $(S)/mlp_seed1.h5 --annotate -o $(VENV)/heatmap_mlp_seed0_vs_seed1.png

bench: venv
	$(BIN)/python bench/run_all.py

sample-data: venv
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[sampledata]"
	$(BIN)/python $(S)/make_sample_data.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
