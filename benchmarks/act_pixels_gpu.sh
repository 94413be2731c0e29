#!/bin/bash
# ACT on pixel observations on a lent GPU (issue 5: "where a GPU machine is lent, also run ACT on pixels"),
# sized to fit one device call of at most ~9 minutes. From the repo root: `bash benchmarks/act_pixels_gpu.sh`.
#
# 1. install (offline: .gl/ holds libEGL debs, .whl/ the mujoco, gymnasium, farama-notifications and
#    PyOpenGL wheels; SKIP_INSTALL=1 where twinarm is installed already),
# 2. record 50 scripted SO101-PickCube episodes, front + wrist cameras at HxW (default 120x160), PNG frames,
# 3. a 200-step probe run (also the CUDA smoke test) measures steps/s, which sizes the real run so that its
#    cosine schedule ends before DEADLINE seconds (training has a hard timeout too),
# 4. train ACT (pixels + agent_pos only: no environment_state, so the cube must be seen), then evaluate
#    the last checkpoint with temporal ensembling (the CPU runs' eval settings) and without, and the
#    halfway checkpoint with it, 50 episodes each (seeds 100000-100049), concurrently.
# Results -> $OUT/act_pixels.tgz (logs, train_log.csv, eval_info.json per eval) and the last checkpoint's
# pretrained_model in parts ($OUT/act_pix_model.tar.NN).
# Dry run on a CPU (as checked before the device call): SKIP_INSTALL=1 PY=.venv/bin/python OUT=/tmp/dryout
#   EPISODES=3 PROBE=20 DEADLINE=300 EVAL_BUDGET=100 EVAL_EPISODES=2 BATCH=8 WORKERS=2 bash benchmarks/act_pixels_gpu.sh
set -u
PY=${PY:-python3}
SITE=${SITE:-/tmp/site}
OUT=${OUT:-/tmp/out}
DEADLINE=${DEADLINE:-530}          # seconds after start by which the results must be packed
EPISODES=${EPISODES:-50}
EVAL_EPISODES=${EVAL_EPISODES:-50}
PROBE=${PROBE:-200}
H=${H:-120}
W=${W:-160}
BATCH=${BATCH:-64}
WORKERS=${WORKERS:-14}
T0=$(date +%s)
now() { echo $(($(date +%s) - T0)); }
log() { echo "[$(now)s] $*"; }
R=$OUT/res
mkdir -p "$R"
exec > >(tee "$R/run.log") 2>&1

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl || exit 3
  "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --upgrade --target "$SITE" . || exit 4
  export PYTHONPATH=$SITE
fi
export MUJOCO_GL=egl PYTHONUNBUFFERED=1
# The twinarm CLI; -P: the checkout's twinarm/ folder must not shadow the installed package.
TW=("$PY" -P -c "import sys; from twinarm.cli.main import main; sys.exit(main())")
nvidia-smi -L 2>/dev/null
"$PY" -P -c "import torch, mujoco; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'mujoco', mujoco.__version__)"
log "installed"

ENV=twinarm/SO101-PickCube-v0
DS=/tmp/pix
RUNS=/tmp/runs
rm -rf $DS $RUNS
mkdir -p $RUNS
"${TW[@]}" record --env $ENV --episodes "$EPISODES" --root $DS --images --height "$H" --width "$W" --num-workers "$WORKERS" \
  --no-progress > $R/record.log 2>&1 || { log "record failed"; tail -20 $R/record.log; exit 6; }
log "recorded $(tail -1 $R/record.log)"

# The CPU state recipe's schedule and model flags, read from benchmarks/policy_results.py (from --lr-schedule on),
# with the backbone trained at the same lr, since it starts from random weights (nothing is downloaded).
mapfile -t STATE_RECIPE < <("$PY" -P -c "import sys; sys.path.insert(0, 'benchmarks'); import policy_results as p
a = p.COMMANDS['act'][0]; print('\n'.join(a[a.index('--lr-schedule'):]))")
[ ${#STATE_RECIPE[@]} -gt 0 ] || { log "cannot read the ACT recipe from benchmarks/policy_results.py"; exit 8; }
RECIPE=(--policy act --dataset $DS --env $ENV --eval-freq 0 --batch-size "$BATCH" --num-workers "$WORKERS" --threads 2 --no-progress
  "${STATE_RECIPE[@]}" --set optimizer_lr_backbone=2e-4)

PROBE_LOG=$((PROBE / 2))
"${TW[@]}" train "${RECIPE[@]}" --output-dir $RUNS/probe --steps "$PROBE" --log-freq "$PROBE_LOG" --save-freq 1000000 \
  > $R/train_probe.log 2>&1 || { log "probe failed"; tail -30 $R/train_probe.log; exit 7; }
cp $RUNS/probe/train_log.csv $R/train_log_probe.csv
EVAL_BUDGET=${EVAL_BUDGET:-110}
LEFT=$((DEADLINE - $(now) - EVAL_BUDGET - 40))  # 40 s: start-up, checkpoint writes, packing
read -r RATE STEPS < <("$PY" - "$RUNS/probe/train_log.csv" "$LEFT" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
(a, b) = rows[-2], rows[-1]  # steps/s between the two log points: workers and cudnn are warm by then
rate = (int(b["step"]) - int(a["step"])) / (float(b["time_s"]) - float(a["time_s"]))
steps = max(100, int(rate * 0.97 * int(sys.argv[2])) // 100 * 100)
print(f"{rate:.2f}", steps)
EOF
)
log "probe: $RATE steps/s; training $STEPS steps in ~$LEFT s"
HALF=$((STEPS / 2))
timeout $((LEFT + 30)) "${TW[@]}" train "${RECIPE[@]}" --output-dir $RUNS/act_pix --steps "$STEPS" --log-freq $((STEPS / 40 > 0 ? STEPS / 40 : 1)) \
  --save-freq "$HALF" > $R/train_act_pix.log 2>&1
log "training stopped (rc $?)"
cp $RUNS/act_pix/train_log.csv $RUNS/act_pix/train_config.json $R/ 2>/dev/null

evaluate() {  # name, checkpoint step dir, extra eval args...
  local name=$1 ckpt=$RUNS/act_pix/checkpoints/$2/pretrained_model
  shift 2
  [ -d "$ckpt" ] || { log "$name: no checkpoint $ckpt"; return; }
  timeout "$EVAL_BUDGET" "${TW[@]}" eval --policy "$ckpt" --env $ENV --episodes "$EVAL_EPISODES" --n-envs 10 --async-envs --threads 1 \
    --out $RUNS/eval_$name "$@" > $R/eval_$name.log 2>&1
  log "$name eval done (rc $?)"
  cp $RUNS/eval_$name/eval_info.json $R/eval_$name.json 2>/dev/null
}
LAST=$(cat $RUNS/act_pix/checkpoints/last 2>/dev/null)
MID=$(printf "%08d" "$HALF")
TE=(--set temporal_ensemble_coeff=0.01 --set n_action_steps=1)
evaluate last_te "$LAST" --videos 0 "${TE[@]}" &
P1=$!
evaluate last_chunk "$LAST" --videos 0 &
P2=$!
[ "$MID" != "$LAST" ] && evaluate mid_te "$MID" --videos 0 "${TE[@]}" &
P3=$!
wait $P1 $P2 $P3
for n in last_te last_chunk mid_te; do
  [ -f $R/eval_$n.json ] && echo "$n: $(grep -h -m1 pc_success $R/eval_$n.json)"
done
log "done"
tar czf $OUT/act_pixels.tgz -C $OUT res && rm -rf $OUT/res  # at most 8 files come back
# The last checkpoint's policy (ResNet-18 included, ~50 MB) in 15 MB parts: files come back at most 16 MB
# each. Evaluated again on the CPU (with mp4s: PyAV is not on the device): cat act_pix_model.tar.* | tar x
[ -n "$LAST" ] && tar cf - -C $RUNS/act_pix/checkpoints/$LAST pretrained_model | split -b 15M -d - $OUT/act_pix_model.tar.
ls -la $OUT
