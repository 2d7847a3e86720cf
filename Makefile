# The two commands of the README: `make demo` and `make test` (each sets up first).
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= demo-output

.PHONY: setup demo test bench default-model clean

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

# Reproduce the shipped default model (data, training on one CPU thread, registration): see the README.
default-model: setup
	./scripts/train-default.sh

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
