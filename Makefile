# Targets the README names. Everything installs into .venv, pinned by constraints.txt
# (torch==2.13.0 there is the CPU build on machines whose pip finds it; plain `torch`
# would pull GBs of CUDA wheels).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= train,runtime,dev
DEMO ?= demo

.PHONY: install demo test test-fast lint format ci clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-$(EXTRAS): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed-$(EXTRAS)

demo: install
	$(BIN)/leed-synth faces $(DEMO)/faces --identities 6
	$(BIN)/leed-synth video $(DEMO)/demo.mp4 --identity 3 --seconds 4
	$(BIN)/leed-train $(DEMO)/faces --check
	@echo
	@echo "next: train a model on it:   $(BIN)/leed-train $(DEMO)/faces --preset tiny --out runs/demo --max-steps 200"
	@echo "      (a shipped trained model and leed-run on $(DEMO)/demo.mp4 land with later issues)"

test: install
	$(BIN)/pytest -q -n 2

test-fast: install
	$(BIN)/pytest -q -n 2 -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

ci: lint test

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache
