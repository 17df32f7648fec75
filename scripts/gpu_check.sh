#!/usr/bin/env bash
# make gpu-check: everything GPU-side once, on any CUDA machine that has torch, in about 8 minutes
# on an H100; every result lands in $OUT (default ./gpu-results) as it is made, so a step that
# fails or a run cut short still leaves what was measured. Run from the repository root; leed
# need not be installed (PYTHONPATH is set here).
#
#   scripts/gpu_check.sh [--dry-run] [all|train|measure]
#     all      (default) train, then measure
#     train    the real-face model: stage 1 then stage 2 ($MINUTES together), its export, the model packed
#              into $OUT/model.tgz.part* (15 MB pieces); then $OUT/train.done
#     measure  doctor, the GPU tests, then (after train.done, when a training runs beside it:
#              WAIT_TRAIN=seconds) the timed steps: onnxruntime-cuda per graph, leed-run on a
#              real clip CUDA vs CPU, training images/s, PyTorch inference
#     --dry-run  print each step and whether it would run or be skipped, and why (CI runs it)
#
# make gpu-pack, here, fills .gpu/ first (real face crops, weights, a 720p clip); the device
# tool starts `train` in the background in its first call and `measure` in a later one, so
# the training runs while the wheels travel (README, "The GPU check").
set -u -o pipefail
DRY=0; [ "${1:-}" = "--dry-run" ] && { DRY=1; shift; }
PHASE=${1:-all}
case $PHASE in all|train|measure) ;; *) echo "gpu_check.sh: unknown phase '$PHASE'; use all, train or measure" >&2; exit 2;; esac
ROOT=$(cd "$(dirname "$0")/.." && pwd); cd "$ROOT"
OUT=${OUT:-$ROOT/gpu-results}; mkdir -p "$OUT/logs"
PY=${PYTHON:-python3}  # the interpreter with torch (make gpu-check passes the venv's when there is one)
PACK=${PACK:-$ROOT/.gpu}           # what `make gpu-pack` wrote
PRESET=${PRESET:-compact}
MINUTES=${MINUTES:-6}              # both training stages together (a third for stage 1)
DATA=${DATA:-$PACK/faces-tw128}
RUN=${RUN:-/tmp/leed-gpu-run}; RUN_G=$RUN-neutralizer; EXP=${EXP:-/tmp/leed-gpu-export}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=/tmp/site:$ROOT${PYTHONPATH:+:$PYTHONPATH}
[ -d "$PACK/torch" ] && export TORCH_HOME=$PACK/torch
LOG=$OUT/log.txt; touch "$LOG"
say() { echo "$*" | tee -a "$LOG"; }
# step NAME SECONDS REASON-TO-SKIP(empty = run) COMMAND...: timed, its output in logs/NAME.log,
# never stops the script
step() {
  local name=$1 secs=$2 skip=$3; shift 3
  if [ -n "$skip" ]; then say "=== $name: skipped: $skip"; return 0; fi
  if [ $DRY = 1 ]; then  # `timeout` runs programs: a shell function or a missing tool would fail there
    if type -P "$1" > /dev/null; then say "=== $name: would run (limit ${secs}s): $*"
    else say "=== $name: broken: '$1' is not a program on PATH"; fi
    return 0
  fi
  say "=== $(date +%T) $name (limit ${secs}s): $*"
  local t0=$SECONDS; timeout -k 10 "$secs" "$@" > "$OUT/logs/$name.log" 2>&1; local rc=$?
  say "=== $name: exit $rc after $((SECONDS - t0)) s"; echo "$name $rc $((SECONDS - t0))" >> "$OUT/steps.txt"
}
has() { $PY -c "import $1" 2>/dev/null; }
# a leed entry point by module and function (timeout runs programs, not shell functions)
LEED=($PY -c "import sys, importlib; f = getattr(importlib.import_module(sys.argv[1]), sys.argv[2]); sys.argv = ['leed'] + sys.argv[3:]; f()")
CUDA=$($PY -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
NOGPU=""; [ "$CUDA" = 1 ] || NOGPU="no CUDA GPU visible to torch (torch.cuda.is_available() is False)"
NODATA=""; [ -f "$DATA/landmarks.csv" ] || NODATA="no training data at $DATA (run \`make gpu-pack\` here first)"
NOORT=""; $PY -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null \
  || NOORT="onnxruntime-gpu is not installed (carry its wheel in pieces: NOTES.md)"
NOAV=""; has av || NOAV="PyAV is not installed (carry the av wheel: NOTES.md)"
say "gpu-check $PHASE $(date -u +%FT%TZ) dry-run=$DRY cuda=$CUDA preset=$PRESET minutes=$MINUTES data=$DATA out=$OUT"
[ "$CUDA" = 1 ] && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | tee -a "$LOG"

train() {
  # Stage 1 (the masked neutralizer), then stage 2 (LEED with the flow head, on the people's own neutral photos), one
  # after the other: sharing the GPU between the two (2026-11-28, H200) made stage 2 run 7 times
  # slower (0.77 steps/s instead of 5.2). --minutes fits each schedule into its share of the time.
  local skip=${NOGPU:-$NODATA} m1=$(awk "BEGIN { print $MINUTES / 3 }") m2=$(awk "BEGIN { print $MINUTES * 2 / 3 }")
  local common=(--preset $PRESET --val-fraction 0.2 --device cuda --workers 0 --amp bf16 --gan-pair-only --gan-mask
                --log-every 50 --sample-every 500 --checkpoint-every 500)
  step train-stage1 $(awk "BEGIN { print int($m1 * 60 + 90) }") "$skip" "${LEED[@]}" leed_train.cli train_main "$DATA" \
    --out $RUN_G "${common[@]}" --minutes $m1 --stage neutralizer --gan-iters 100000 --gan-batch-size 32 --gan-lr 1e-3 \
    --gan-lambda-keep 0.1
  step train-stage2 $(awk "BEGIN { print int($m2 * 60 + 90) }") "$skip" "${LEED[@]}" leed_train.cli train_main "$DATA" \
    --out $RUN "${common[@]}" --minutes $m2 --stage leed --neutrals photos --perceptual mobilenet_v2 --no-q \
    --lambda-adv 0.01 --batch-size 32 --epochs 5000 --lr 2e-4 --lr-decoder 1e-3 --warp
  if [ $DRY = 0 ] && [ -d $RUN_G/checkpoints ] && [ -d $RUN/checkpoints ]; then  # the neutralizer joins the run
    cp -r "$(ls -d $RUN_G/checkpoints/neutralizer-* | tail -1)" $RUN/checkpoints/
  fi
  step export 150 "${NOGPU:-$NODATA}" "${LEED[@]}" leed_export.cli main $RUN --out $EXP --force \
    --warp-edit --residual-base input --warp-paint 0
  if [ $DRY = 0 ] && [ -d $RUN/checkpoints ]; then  # weights, logs and samples, no optimizer state
    mkdir -p $RUN/neutralizer-run && cp -r $RUN_G/stats.jsonl $RUN_G/samples $RUN/neutralizer-run/ 2>/dev/null
    local last=$(cd $RUN && for s in leed neutralizer; do ls -d checkpoints/$s-* 2>/dev/null | tail -1; done)
    (cd $RUN && tar czf - config.json split.json stats.jsonl samples neutralizer-run \
      $(for c in $last; do echo $c/weights.safetensors $c/state.json; done)) | split -b 15m - "$OUT/model.tgz.part"
  fi
  [ $DRY = 0 ] && touch "$OUT/train.done"
}

measure() {
  step doctor 60 "" "${LEED[@]}" leed_runtime.cli doctor_main --json
  step gpu-tests 180 "$NOGPU" $PY -m pytest -q -p no:cacheprovider -rfEs -m gpu tests --junitxml="$OUT/pytest-gpu.xml"
  if [ $DRY = 0 ] && [ -n "${WAIT_TRAIN:-}" ]; then  # the timed steps need the GPU to themselves
    local t0=$SECONDS
    while [ ! -f "$OUT/train.done" ] && [ $((SECONDS - t0)) -lt "$WAIT_TRAIN" ]; do sleep 2; done
    say "=== waited $((SECONDS - t0)) s for the training (train.done: $([ -f "$OUT/train.done" ] && echo yes || echo no))"
  fi
  local norun=""; [ -d $EXP ] || [ $DRY = 1 ] || norun="no export at $EXP (the train phase made none)"
  local clip=$PACK/talk720.mp4; [ -f "$clip" ] || clip=samples/real/talk.mp4
  local args=(--video $clip --ref samples/real/surprised.jpg --model $EXP)
  step bench-ort-cuda 90 "${NOGPU:-${NOORT:-$norun}}" "${LEED[@]}" leed_export.bench.cli bench_main infer $EXP \
    --backend onnxruntime-cuda --batch 1,64 --json "$OUT/bench-ort-cuda.json"
  step run-cuda 90 "${NOGPU:-${NOORT:-${NOAV:-$norun}}}" "${LEED[@]}" leed_runtime.cli run_main "${args[@]}" \
    --backend onnxruntime-cuda --out /tmp/out-cuda.mp4 --strip "$OUT/strip-cuda.png" --summary-json "$OUT/run-cuda.json"
  step bench-train-paper 60 "$NOGPU" "${LEED[@]}" leed_export.bench.cli bench_main train --preset paper --device cuda \
    --batch-size 24 --steps 20 --warmup 5 --no-q --json "$OUT/bench-train-paper.json"
  step bench-torch 60 "${NOGPU:-$([ -d $RUN ] || [ $DRY = 1 ] || echo 'no trained run')}" "${LEED[@]}" leed_export.bench.cli \
    bench_main infer $EXP --torch $RUN --batch 1,64 --json "$OUT/bench-torch.json"
  step bench-ort-cuda-graph 90 "${NOGPU:-${NOORT:-$norun}}" "${LEED[@]}" leed_export.bench.cli bench_main infer $EXP \
    --backend onnxruntime-cuda --batch 1,64 --cuda-graph --nhwc --json "$OUT/bench-ort-cuda-graph.json"
  step bench-train-small 60 "$NOGPU" "${LEED[@]}" leed_export.bench.cli bench_main train --preset small --device cuda \
    --batch-size 24 --steps 20 --warmup 5 --no-q --json "$OUT/bench-train-small.json"
  step run-cpu 90 "${NOAV:-$norun}" "${LEED[@]}" leed_runtime.cli run_main "${args[@]}" --backend onnxruntime-cpu \
    --out /tmp/out-cpu.mp4 --summary-json "$OUT/run-cpu.json"
}

case $PHASE in
  all) train; measure ;;
  train) train ;;
  measure) measure ;;
esac
say "gpu-check $PHASE done; results in $OUT"
