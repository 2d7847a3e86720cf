# The two commands of the README: `make demo` and `make test` (each sets up first).
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= demo-output

.PHONY: setup demo test bench training-data default-model bench-quality clean

setup:
	./scripts/setup.sh

demo: setup
	$(VENV)/bin/wavesep demo --out $(DEMO_DIR)

# pytest exits 5 when it collects nothing; make treats that as the failure it is.
test: setup
	$(PY) -m pytest -q

# The peers (demucs, openunmix, asteroid) are installed by setup (scripts/setup.sh).
bench: setup
	$(PY) bench/render.py
	$(PY) bench/train.py
	$(PY) bench/separate.py --seconds 60

# The training data of the default model and of bench/quality.py's runs: 300 procedural songs
# (seed 7; the quality benchmark tests on seed 4242, the tests and the demo use 2026), rendered
# with FluidR3_GM. Both steps resume: existing songs are kept. DRUM_KITS=gm renders each song's
# drums with one of the eight GM kits (into another DATA: a dataset keeps its settings).
DATA ?= data/default
DRUM_KITS ?=
training-data: setup
	$(VENV)/bin/wavesep midi generate --out $(DATA)/midi --songs 300 --seed 7
	$(VENV)/bin/wavesep render $(DATA)/midi --out $(DATA)/dataset --workers $$(nproc) \
		$(if $(DRUM_KITS),--drum-kits $(DRUM_KITS))

# Reproduce the shipped default model (training on one CPU thread, registration): see the README.
default-model: training-data
	DATA=$(DATA) DRUM_KITS=$(DRUM_KITS) BIN=$(VENV)/bin ./scripts/train-default.sh

# wavesep against Conv-TasNet, HDemucs and Open-Unmix trained on the same data with the same CPU
# budget (trains the runs RUNS lacks, SEEDS per system, JOBS at a time, then scores them all): see
# the README. Its headline table is `make bench-quality DATA=data/drum-kits DRUM_KITS=gm
# RUNS=runs/kits SYSTEMS="wavesep conv-tasnet open-unmix" JOBS=2`.
SEEDS ?= 3
JOBS ?= 1
RUNS ?= runs/compare
SYSTEMS ?= wavesep conv-tasnet hdemucs open-unmix
bench-quality: training-data
	$(PY) bench/quality.py --train $(DATA)/dataset --runs $(RUNS) --seeds $(SEEDS) --jobs $(JOBS) \
		--systems $(SYSTEMS) --out $(RUNS)/quality.json

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
