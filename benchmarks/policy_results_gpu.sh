#!/bin/bash
# The GPU results of issue 5 (benchmarks/results/policy_results_gpu.txt), as run on a lent H200 on
# 2026-11-26 from the repo root: `bash benchmarks/policy_results_gpu.sh` (OUT=dir for the results).
# On a machine where twinarm is already installed, SKIP_INSTALL=1 skips the offline install (the
# device had no package index: .gl/ held libEGL debs and .whl/ the mujoco, gymnasium,
# farama-notifications and PyOpenGL wheels). Each training is capped in wall time, not steps: the
# last checkpoint is evaluated. Two follow-up calls resumed the Diffusion runs (same flags plus
# --resume; see the results file).
#
# One lent-GPU session: install, record 50 scripted SO-101 PickCube episodes with two 240x320 cameras,
# train ACT on pixels and two Diffusion Policy variants on state (concurrently, each under a time cap),
# then evaluate every last checkpoint over 50 episodes. Results -> $OUT/gpu_results.tgz.
# Python runs with -P: the checkout's twinarm/ folder must not shadow the installed package.
# Env: PY (python), SITE (install target), SCALE (1 = real run; <1 shrinks the time caps for a dry run).
set -u
PY=${PY:-python3}
SITE=${SITE:-/tmp/site}
SCALE=${SCALE:-1}
OUT=${OUT:-/tmp/out}
T0=$(date +%s)
cap() { "$PY" -c "print(max(5, int($1 * $SCALE)))"; }
log() { echo "[$(($(date +%s) - T0))s] $*"; }
R=$OUT/res
mkdir -p "$R"
exec > >(tee "$R/run.log") 2>&1

EPISODES=${EPISODES:-50}
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  if [ "${NO_DEB:-0}" != 1 ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl || exit 3
  "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --upgrade --target "$SITE" . || exit 4
fi
export PYTHONPATH=$SITE MUJOCO_GL=egl PYTHONUNBUFFERED=1
TW() { "$PY" -P -c "import sys; from twinarm.cli.main import main; sys.exit(main())" "$@"; }
nvidia-smi -L 2>/dev/null
"$PY" -P -c "
import torch, mujoco, gymnasium as gym, twinarm
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'mujoco', mujoco.__version__)
e = gym.make('twinarm/SO101-PickCube-v0', obs_type='pixels_agent_pos', image_size=(240, 320))
o, _ = e.reset(seed=0)
print({k: v.shape for k, v in o['pixels'].items()})
" || exit 5
log "installed"

ENV=twinarm/SO101-PickCube-v0
STATE_DS=outputs/policy_results/so101_pickcube_scripted_50
PIX_DS=/tmp/pix50
W=/tmp/runs
mkdir -p $W

# Diffusion (state obs, the same 50 episodes as the CPU runs), two U-Net widths, EMA, constant lr.
diff_run() {  # name, down_dims, lr
  timeout "$(cap 320)" "$PY" -P -c "import sys; from twinarm.cli.main import main; sys.exit(main())" train \
    --policy diffusion --dataset $STATE_DS --env $ENV --eval-freq 0 --output-dir $W/$1 --steps 200000 --batch-size 64 \
    --num-workers 2 --log-freq 500 --save-freq ${DSAVE:-2500} --threads 2 --no-progress --lr-schedule constant \
    --set "down_dims=$2" --set diffusion_step_embed_dim=128 --set horizon=16 --set n_action_steps=8 \
    --set 'noise_scheduler_type="DDIM"' --set num_inference_steps=10 --set optimizer_lr=$3 > $R/train_$1.log 2>&1
  log "$1 training stopped (rc $?)"
}
diff_run diff_s '[64,128,256]' 2e-4 &
P1=$!
diff_run diff_m '[128,256,512]' 1e-4 &
P2=$!

# ACT on pixels: record with the scripted expert (PNG frames in parquet), then train.
TW record --env $ENV --episodes $EPISODES --root $PIX_DS --images --height 240 --width 320 --num-workers 12 \
  --no-progress > $R/record.log 2>&1 || { log "record failed"; tail -20 $R/record.log; }
log "recorded pixel dataset"
timeout "$(cap 280)" "$PY" -P -c "import sys; from twinarm.cli.main import main; sys.exit(main())" train \
  --policy act --dataset $PIX_DS --env $ENV --eval-freq 0 --output-dir $W/act_pix --steps 200000 --batch-size 32 \
  --num-workers 12 --log-freq 250 --save-freq ${ASAVE:-1000} --threads 2 --no-progress \
  --set chunk_size=30 --set n_action_steps=10 --set optimizer_lr=1e-4 --set optimizer_lr_backbone=1e-4 \
  > $R/train_act_pix.log 2>&1
log "act_pix training stopped (rc $?)"
wait $P1 $P2  # (a bare `wait` would also wait for the tee above)
log "all training stopped"

evaluate() {  # run name
  local last
  last=$(cat $W/$1/checkpoints/last 2>/dev/null) || { log "$1: no checkpoint"; return; }
  timeout "$(cap 150)" "$PY" -P -c "import sys; from twinarm.cli.main import main; sys.exit(main())" eval \
    --policy $W/$1/checkpoints/$last/pretrained_model --env $ENV --episodes 50 --n-envs 10 --videos 0 \
    --threads 1 --out $R/eval_$1 > $R/eval_$1.log 2>&1
  log "$1 eval at step $last done (rc $?)"
}
PIDS=()
for r in act_pix diff_s diff_m; do
  evaluate $r &
  PIDS+=($!)
done
wait "${PIDS[@]}"
for r in act_pix diff_s diff_m; do
  cp $W/$r/train_log.csv $R/train_log_$r.csv 2>/dev/null
  cp $W/$r/train_config.json $R/train_config_$r.json 2>/dev/null
  grep -h pc_success -A3 $R/eval_$r/eval_info.json 2>/dev/null | head -4
done
"$PY" -P -c "import json; print(json.load(open('$PIX_DS/meta/info.json'))['total_episodes'], 'pixel episodes')" 2>/dev/null
nvidia-smi --query-gpu=name,memory.used --format=csv 2>/dev/null
tar czf $OUT/gpu_results.tgz -C $OUT res
log "done"
