# The two commands of the README: `make demo` and `make test` (each sets up first).
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= demo-output

.PHONY: setup demo test bench clean

setup:
	./scripts/setup.sh

demo: setup
	$(VENV)/bin/wavesep demo --out $(DEMO_DIR)

# pytest exits 5 when it collects nothing; make treats that as the failure it is.
test: setup
	$(PY) -m pytest -q

# The peers of bench/separate.py: demucs and openunmix without their torchaudio pin (no torchaudio
# build loads with torch 2.13 here); their model modules need only einops and julius.
bench: setup
	$(PY) -m pip install --quiet -c constraints.txt -e ".[bench]"
	$(PY) -m pip install --quiet --no-deps demucs openunmix
	$(PY) bench/render.py
	$(PY) bench/train.py
	$(PY) bench/separate.py --seconds 60

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
