#!/bin/bash
# Reproduce the shipped `default` model (make default-model, which first renders the training
# songs into $DATA/dataset): train $CONFIG (configs/default.yaml on the CPU; the shipped weights
# come from configs/default-gpu.yaml on a GPU), measure the floor the tests hold it to, and
# register it in wavesep/weights. Training continues from its last checkpoint if there is one
# (with the config saved in the run: edit that, or start a new RUN, to change it).
set -euo pipefail
DATA=${DATA:-data/default}
RUN=${RUN:-runs/default}
BIN=${BIN:-.venv/bin}
CONFIG=${CONFIG:-configs/default.yaml}

# One thread: on the CPU the budget (training.budget_s) is CPU seconds, as in bench/quality.py.
if [ -f "$RUN/last.pt" ]; then
    OMP_NUM_THREADS=1 "$BIN/wavesep" train --resume "$RUN" --no-progress
else
    OMP_NUM_THREADS=1 "$BIN/wavesep" train "$CONFIG" --set "data.source=$DATA/dataset" --run-dir "$RUN" \
        --no-progress
fi
"$BIN/wavesep" export "$RUN/best.pt" --out "$RUN/default.safetensors"
# The floor: the model's mean SI-SDRi on 20 s of a song it never heard (seed 2026, as in
# tests/test_default_model.py), less 1 dB for numerical differences between machines.
floor=$("$BIN/python" scripts/floor.py "$RUN/default.safetensors")
stride=$("$BIN/python" -c "import sys; from wavesep.train.checkpoint import read_checkpoint
print(read_checkpoint(sys.argv[1])['config']['model']['args']['stride'])" "$RUN/best.pt")
"$BIN/wavesep" export "$RUN/best.pt" --out "$RUN/default.safetensors" --register default \
    --description "latent-wavenet (stride $stride), band stems, 44.1 kHz; $CONFIG" \
    --info "floor_si_sdri=$floor" \
    --info "trained_on=$DATA/dataset, made by make training-data (300 generated songs, seed 7, FluidR3_GM${DRUM_KITS:+, drum kits $DRUM_KITS})"
echo "registered default (floor $floor dB)"
