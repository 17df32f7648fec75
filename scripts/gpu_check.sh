#!/usr/bin/env bash
# make gpu-check: everything GPU-side once, on any CUDA machine that has torch, in about 8 minutes
# on an H100; every result lands in $OUT (default ./gpu-results) as it is made, so a step that
# fails or a run cut short still leaves what was measured. Run from the repository root; leed
# need not be installed (PYTHONPATH is set here).
#
#   scripts/gpu_check.sh            # run (make gpu-pack first, here, to fill .gpu/)
#   scripts/gpu_check.sh --dry-run  # print each step and whether it would run or be skipped, and why
#
# Order, most valuable first: the real-face training run (stage 1 + 2, then its export comes back),
# doctor, the GPU tests, training images/s, PyTorch inference, then what needs onnxruntime-gpu
# (parity CUDA vs CPU) and PyAV (leed-run on a real clip, CUDA vs CPU), each skipped with the
# reason when its library is absent (NOTES.md: carry their wheels in pieces first).
set -u -o pipefail
DRY=0; [ "${1:-}" = "--dry-run" ] && DRY=1
ROOT=$(cd "$(dirname "$0")/.." && pwd); cd "$ROOT"
OUT=${OUT:-$ROOT/gpu-results}; mkdir -p "$OUT"
PY=${PYTHON:-python3}  # the interpreter with torch (make gpu-check passes the venv's when there is one)
PRESET=${PRESET:-compact}          # compact: an export small enough to come back ($OUT: 16 MB a file)
TRAIN_S=${TRAIN_S:-270}            # seconds for both training stages together
DATA=${DATA:-$ROOT/.gpu/faces-tw128}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=/tmp/site:$ROOT${PYTHONPATH:+:$PYTHONPATH}
[ -d "$ROOT/.gpu/torch" ] && export TORCH_HOME=$ROOT/.gpu/torch
LOG=$OUT/log.txt; : > "$LOG"
say() { echo "$*" | tee -a "$LOG"; }
# step NAME SECONDS REASON-TO-SKIP(empty = run) COMMAND...: timed, logged, never stops the script
step() {
  local name=$1 secs=$2 skip=$3; shift 3
  if [ -n "$skip" ]; then say "=== $name: skipped: $skip"; return 0; fi
  if [ $DRY = 1 ]; then say "=== $name: would run (limit ${secs}s): $*"; return 0; fi
  say "=== $(date +%T) $name (limit ${secs}s): $*"
  local t0=$SECONDS; timeout -k 10 "$secs" "$@" >> "$LOG" 2>&1; local rc=$?
  say "=== $name: exit $rc after $((SECONDS - t0)) s"; echo "$name $rc $((SECONDS - t0))" >> "$OUT/steps.txt"
}
has() { $PY -c "import $1" 2>/dev/null; }
leed() { $PY -c "import sys; from $1 import $2 as m; sys.argv[0] = 'leed'; m()" "${@:3}"; }
CUDA=$($PY -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
NOGPU=""; [ "$CUDA" = 1 ] || NOGPU="no CUDA GPU visible to torch (torch.cuda.is_available() is False)"
NODATA=""; [ -f "$DATA/landmarks.csv" ] || NODATA="no training data at $DATA (run \`make gpu-pack\` here first)"
NOORT=""; $PY -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null \
  || NOORT="onnxruntime-gpu is not installed (carry its wheel in pieces: NOTES.md)"
NOAV=""; has av || NOAV="PyAV is not installed (carry the av wheel: NOTES.md)"
say "gpu-check $(date -u +%FT%TZ) dry-run=$DRY cuda=$CUDA preset=$PRESET data=$DATA out=$OUT"
[ "$CUDA" = 1 ] && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | tee -a "$LOG"

# 1. The real-face model: stage 1 (masked neutralizer) and stage 2 (LEED), bf16, then its export.
RUN=/tmp/leed-gpu-run; EXP=/tmp/leed-gpu-export
COMMON=(--out $RUN --preset $PRESET --val-fraction 0.2 --device cuda --workers 8 --amp bf16 --gan-pair-only --gan-mask
        --log-every 50 --sample-every 1000 --checkpoint-every 250)
step train-stage1 $((TRAIN_S / 3)) "${NOGPU:-$NODATA}" leed leed_train.cli train_main "$DATA" "${COMMON[@]}" \
  --stage neutralizer --gan-iters 4000 --gan-lr 1e-3
step train-stage2 $((TRAIN_S * 2 / 3)) "${NOGPU:-$NODATA}" leed leed_train.cli train_main "$DATA" "${COMMON[@]}" \
  --stage leed --perceptual mobilenet_v2 --no-q --lambda-adv 0.01 --batch-size 32 --epochs 120 --lr 2e-4 --lr-decoder 1e-3
step export 90 "${NOGPU:-$NODATA}" leed leed_export.cli main $RUN --out $EXP --force --residual-edit
[ $DRY = 0 ] && [ -d $RUN ] && tar czf "$OUT/run-logs.tgz" -C $RUN config.json split.json stats.jsonl samples 2>/dev/null
[ $DRY = 0 ] && [ -d $EXP ] && tar czf - -C $EXP . | split -b 15m - "$OUT/export.tgz.part"

# 2. What the machine and leed see, and the GPU tests.
step doctor 60 "" leed leed_runtime.cli doctor_main --json
step gpu-tests 150 "$NOGPU" $PY -m pytest -q -p no:cacheprovider -rfEs -m gpu tests --junitxml="$OUT/pytest-gpu.xml"

# 3. Training and PyTorch inference speed (images/s; ms per chain at batch 1 and frames/s at 64).
for p in small paper; do
  step bench-train-$p 60 "$NOGPU" leed leed_export.bench_cli bench_main train --preset $p --device cuda \
    --batch-size 24 --steps 20 --warmup 5 --no-q --json "$OUT/bench-train-$p.json"
done
step bench-torch 60 "${NOGPU:-$([ -d $RUN ] || [ $DRY = 1 ] || echo 'no trained run')}" leed leed_export.bench_cli bench_main \
  infer $EXP --torch $RUN --batch 1,64 --json "$OUT/bench-torch.json"

# 4. onnxruntime-gpu: every graph CUDA vs CPU, then the pipeline on a real clip, CUDA vs CPU.
step bench-ort-cuda 120 "${NOGPU:-$NOORT}" leed leed_export.bench_cli bench_main infer $EXP --backend onnxruntime-cuda \
  --batch 1,64 --json "$OUT/bench-ort-cuda.json"
step bench-ort-cuda-graph 120 "${NOGPU:-$NOORT}" leed leed_export.bench_cli bench_main infer $EXP \
  --backend onnxruntime-cuda --batch 1,64 --cuda-graph --nhwc --json "$OUT/bench-ort-cuda-graph.json"
CLIP="--video samples/real/talk.mp4 --ref samples/real/surprised.jpg"
step run-cuda 120 "${NOGPU:-${NOORT:-$NOAV}}" leed leed_runtime.cli run_main $CLIP --model $EXP --backend onnxruntime-cuda \
  --out /tmp/out-cuda.mp4 --strip "$OUT/strip-cuda.png" --summary-json "$OUT/run-cuda.json"
step run-cpu 120 "${NOAV}" leed leed_runtime.cli run_main $CLIP --model ${EXP} --backend onnxruntime-cpu \
  --out /tmp/out-cpu.mp4 --summary-json "$OUT/run-cpu.json"
say "gpu-check done; results in $OUT"
