#!/bin/bash
# Policy speed against LeRobot on a lent GPU (`policy_speed.py --device cuda`, float32 then bf16), and the CUDA
# tests (`tests/agents/test_cuda.py`: float32 as on the CPU, bf16 close to it, bf16 training learns), in one
# device call of ~5 minutes.
#
# The GPU machine has torch 2.11 (as /root/lerobot-venv here) and no package registry, so the packages it lacks
# travel as wheels in .whl/ (ignored by git). Prepare them here once, then call the device:
#   echo /.whl/ >> .git/info/exclude; bash benchmarks/policy_speed_gpu.sh download
#   device run: command "bash benchmarks/policy_speed_gpu.sh", carry [".whl"]
# LeRobot 0.6.1 goes to its own folder, on its worker's path only. PyAV's 40 MB wheel does not fit the carry
# limit: LeRobot's worker gets an import-time stand-in (its policy modules import LeRobot's dataset package,
# which imports av; none of the timed calls decode video), twinarm's worker no av at all (it does not need it).
# Results -> $OUT: policy_speed_cuda.txt, policy_speed_cuda_bf16.txt, test_cuda.log, run.log.
# Dry run on a CPU: OUT=/tmp/dry PY=/root/lerobot-venv/bin/python DEVICE=cpu SPEED_ARGS="--policy tdmpc --repeats 1" bash benchmarks/policy_speed_gpu.sh
set -u
PY=${PY:-python3}
OUT=${OUT:-/tmp/out}
WHL=.whl
TWINARM_WHEELS="gymnasium==1.4.0 farama-notifications==0.0.6"  # policies and their tests need no MuJoCo
LEROBOT_WHEELS="lerobot==0.6.1 draccus==0.11.6 diffusers==0.42.1 datasets==4.8.5 dill==0.4.1 multiprocess==0.70.19
  mergedeep==1.3.4 jsonlines==4.0.0 termcolor==3.3.0 toml==0.10.2"

if [ "${1:-}" = download ]; then
  mkdir -p $WHL/twinarm $WHL/lerobot
  get() {
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$@"
  }
  # shellcheck disable=SC2086
  get $WHL/twinarm $TWINARM_WHEELS && get $WHL/lerobot $LEROBOT_WHEELS && du -sh $WHL
  exit
fi

T0=$(date +%s)
log() { echo "[$(($(date +%s) - T0))s] $*"; }
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
nvidia-smi -L
install() {  # target folder, wheel folder
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$1" "$2"/*.whl || exit 3
}
install /tmp/site $WHL/twinarm
"$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/site . || exit 4
install /tmp/lrsite $WHL/lerobot
mkdir -p /tmp/avshim/av /tmp/avshim/av-0.0.0.dist-info
printf 'Metadata-Version: 2.1\nName: av\nVersion: 0.0.0\n' > /tmp/avshim/av-0.0.0.dist-info/METADATA
cat > /tmp/avshim/av/__init__.py <<'EOF'
"""Import-time stand-in for PyAV (not installed here): attribute chains resolve, for annotations; calls fail."""


class _Absent:
    def __getattr__(self, name):
        return self

    def __or__(self, other):
        return self

    __ror__ = __or__

    def __call__(self, *args, **kwargs):
        raise ImportError("PyAV is not installed on this machine")


def __getattr__(name):
    return _Absent()
EOF
cat > /tmp/lerobot-python <<EOF
#!/bin/sh
PYTHONPATH=/tmp/avshim:/tmp/lrsite\${PYTHONPATH:+:\$PYTHONPATH} exec $PY "\$@"
EOF
chmod +x /tmp/lerobot-python
export PYTHONPATH=/tmp/site MUJOCO_GL=egl PYTHONUNBUFFERED=1
"$PY" -P -c "import torch, twinarm; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'twinarm', twinarm.__file__)"
/tmp/lerobot-python -P -c "import lerobot, torch; print('lerobot', lerobot.__version__, 'torch', torch.__version__)"
log "installed"

# The installed twinarm before the checkout (whose top-level twinarm/ folder holds only the cross-cutting
# modules; the subpackages are mapped in at install), the checkout for the tests package.
PYTHONPATH=/tmp/site:$PWD "$PY" -P -m pytest -q -p no:cacheprovider tests/agents/test_cuda.py > "$OUT/test_cuda.log" 2>&1
log "CUDA tests: $(tail -1 "$OUT/test_cuda.log")"

for precision in float32 bf16; do
  name=policy_speed_cuda$([ $precision = bf16 ] && echo _bf16).txt
  timeout 300 "$PY" benchmarks/policy_speed.py --device "${DEVICE:-cuda}" --precision $precision --lerobot-python /tmp/lerobot-python \
    --out "$OUT/$name" ${SPEED_ARGS:-} > "$OUT/speed_$precision.log" 2>&1
  log "speed $precision (rc $?)"
  cat "$OUT/$name" 2>/dev/null || tail -20 "$OUT/speed_$precision.log"
done
log "done"
