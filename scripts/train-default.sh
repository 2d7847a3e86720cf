#!/bin/bash
# Reproduce the shipped `default` model (make default-model): generate and render the training
# songs, train configs/default.yaml, measure the floor the tests hold it to, and register it in
# wavesep/weights. Every step resumes: rendered songs are kept, training continues from its last
# checkpoint. DATA and RUN choose where the dataset and the run go.
set -euo pipefail
DATA=${DATA:-data/default}
RUN=${RUN:-runs/default}
BIN=${BIN:-.venv/bin}

# 300 procedural songs, seed 7 (bench/quality.py tests on seed 4242, the tests and demo on 2026).
"$BIN/wavesep" midi generate --out "$DATA/midi" --songs 300 --seed 7
"$BIN/wavesep" render "$DATA/midi" --out "$DATA/dataset" --workers "$(nproc)"
# One thread: the budget (training.budget_s) is CPU seconds, as in bench/quality.py.
if [ -f "$RUN/last.pt" ]; then
    OMP_NUM_THREADS=1 "$BIN/wavesep" train --resume "$RUN" --no-progress
else
    OMP_NUM_THREADS=1 "$BIN/wavesep" train configs/default.yaml --set "data.source=$DATA/dataset" --run-dir "$RUN" \
        --no-progress
fi
"$BIN/wavesep" export "$RUN/best.pt" --out "$RUN/default.safetensors"
# The floor: the model's mean SI-SDRi on 20 s of a song it never heard (seed 2026, as in
# tests/test_default_model.py), less 1 dB for numerical differences between machines.
floor=$("$BIN/python" scripts/floor.py "$RUN/default.safetensors")
"$BIN/wavesep" export "$RUN/best.pt" --out "$RUN/default.safetensors" --register default \
    --description "latent-wavenet (stride 64), band stems, 44.1 kHz; configs/default.yaml" \
    --info "floor_si_sdri=$floor" --info "trained_on=300 generated songs (seed 7), FluidR3_GM, $DATA/dataset"
echo "registered default (floor $floor dB)"
