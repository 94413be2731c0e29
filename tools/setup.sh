#!/usr/bin/env bash
# One-command set-up for a fresh machine, then the main job or the test suite.
#
#   bash tools/setup.sh demo   # install everything, roll out the SO-101 expert (mp4), record a small
#                              # LeRobot v3 dataset in outputs/datasets/so101_pickcube and check it
#   bash tools/setup.sh test   # install everything + dev tools, run ruff and the whole test suite
#   bash tools/setup.sh        # install only
#
# Installs the system libraries for headless rendering (EGL/OSMesa), libusb (pyrealsense2) and
# FFmpeg (and Xvfb, xdotool for the tests), then a virtual env in .venv with twinarm and all extras. Safe to
# re-run: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MODE=${1:-install}
VENV=${TWINARM_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3.11}

SYSTEM_PKGS=(libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libgles2 libosmesa6 libglib2.0-0 libusb-1.0-0 ffmpeg)
# The tests also open `teleop --view`'s window on a virtual X display and type keys into it.
if [ "$MODE" = test ]; then SYSTEM_PKGS+=(xvfb xdotool); fi
missing=()
for p in "${SYSTEM_PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual env $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
PIP=("$VENV/bin/pip" install -q --disable-pip-version-check)
# The CPU build of torch (a plain `torch` requirement may pull a multi-GB CUDA build).
"$VENV/bin/python" -c "import torch" 2>/dev/null || "${PIP[@]}" "torch==2.13.0"
echo "[setup] installing twinarm and its extras"
"${PIP[@]}" -e "$ROOT[all,dev]"

export MUJOCO_GL=${MUJOCO_GL:-egl}
export PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-$MUJOCO_GL}
case "$MODE" in
  demo)
    "$VENV/bin/twinarm" demo --env twinarm/SO101-PickCube-v0 --episodes 3 --out outputs/demo
    DATA=outputs/datasets/so101_pickcube
    rm -rf "$DATA"
    "$VENV/bin/twinarm" record --env twinarm/SO101-PickCube-v0 --policy scripted --episodes 10 \
      --root "$DATA" --height 240 --width 320 --num-workers 2
    "$VENV/bin/twinarm" dataset check "$DATA"
    "$VENV/bin/twinarm" dataset info "$DATA"
    ;;
  test)
    "$VENV/bin/ruff" check .
    # tests/real mostly waits on its servo emulators, so it runs beside the rest of the suite (3.5 of its 13
    # minutes hidden on 2 cores). The rest yields the CPU to it (nice 19), so the emulators still answer within
    # the vendor SDKs' ~35 ms reply timeouts. Its report follows the rest's; the exit status is the first failure's.
    REAL_LOG=$(mktemp)
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/real >"$REAL_LOG" 2>&1 &
    REAL=$!
    trap 'kill "$REAL" 2>/dev/null; rm -f "$REAL_LOG"; exit 130' INT TERM
    rc=0
    nice -n 19 "$VENV/bin/python" -m pytest -q -p no:cacheprovider --ignore=tests/real tests || rc=$?
    real_rc=0
    wait "$REAL" || real_rc=$?
    if [ "$rc" -eq 0 ]; then rc=$real_rc; fi
    echo "[setup] tests/real, run beside the rest:"
    cat "$REAL_LOG"
    rm -f "$REAL_LOG"
    exit "$rc"
    ;;
  install) echo "[setup] done: activate with 'source $VENV/bin/activate'" ;;
  *) echo "usage: bash tools/setup.sh [demo|test]" >&2; exit 2 ;;
esac
