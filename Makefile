# Targets the README names. Everything installs into .venv, pinned by constraints.txt
# (torch==2.13.0 there is the CPU build on machines whose pip finds it; plain `torch`
# would pull GBs of CUDA wheels).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= train,runtime,tensorrt-rtx,dev
DEMO ?= demo

.PHONY: install demo demo-train test test-fast lint format ci clean

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
	@echo "next: train a tiny model on it (about 4 minutes on 2 CPU cores): make demo-train"
	@echo "      (a shipped trained model and leed-run on $(DEMO)/demo.mp4 land with later issues)"

# Offline recipe: Psi on other synthetic people, then both LEED stages on demo/faces.
# --perceptual l1 keeps it fast and offline (ImageNet VGG19, the default, needs its weights).
demo-train: install
	$(BIN)/leed-synth faces $(DEMO)/psi --identities 6 --seed 1 --first-id 101
	$(BIN)/leed-train $(DEMO)/psi --stage psi --preset tiny --out runs/demo-psi --max-steps 150 --batch-size 16
	$(BIN)/leed-train $(DEMO)/faces --preset tiny --out runs/demo --psi runs/demo-psi/psi.safetensors \
		--perceptual l1 --max-steps 300 --batch-size 8 --sample-every 100
	@echo "samples: runs/demo/samples/   losses: tensorboard --logdir runs/demo/tensorboard"

test: install
	$(BIN)/pytest -q -n 2

test-fast: install
	$(BIN)/pytest -q -n 2 -m "not slow"

lint: install
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --no-cache --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

ci: lint test

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache
