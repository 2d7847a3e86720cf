#!/usr/bin/env bash
# Set up wavesep on a fresh Debian/Ubuntu machine: system packages (FluidSynth and a
# General MIDI SoundFont), then a virtual environment with the package and its dependencies.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
# libfluidsynth3: the synthesizer library wavesep renders with.
# fluid-soundfont-gm: FluidR3_GM.sf2, the default SoundFont.
# timgm6mb-soundfont: TimGM6mb.sf2, the unseen timbres of bench/quality.py (and a second SoundFont in tests).
# musescore-general-soundfont-small: MuseScore_General_Lite.sf3, the second training SoundFont of
#   bench/quality.py's two-SoundFont comparison (see the README).
# fluidsynth: the command-line tool, used only by bench/render.py as the naive peer.
# chromium: the headless browser tests/test_report.py opens the samples page in (driven by playwright).
# ffmpeg: only so tests/test_metrics.py can import museval (its musdb/stempeg imports fail without it).
APT_PACKAGES=(libfluidsynth3 fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont-small fluidsynth
              chromium ffmpeg)

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for pkg in "${APT_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
else
    echo "setup: no dpkg here; make sure libfluidsynth (2.x) and a GM SoundFont are installed" >&2
fi

if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing ${missing[*]} with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
        echo "setup: missing system packages; run this, then run the command again:" >&2
        echo "    sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "wavesep needs Python 3.11+"'
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.wavesep-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ] || [ "$0" -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    # constraints.txt pins torch to the CPU build.
    "$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[dev,peers]"
    # The peers of wavesep/models/peers.py, without their requirements (see pyproject's `peers` extra).
    "$VENV/bin/python" -m pip install --quiet --no-deps demucs==4.1.0 openunmix==1.3.0 asteroid==0.7.0 \
        asteroid-filterbanks==0.4.0
    touch "$stamp"
fi
"$VENV/bin/wavesep" --version
