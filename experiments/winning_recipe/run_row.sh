#!/usr/bin/env bash
# One ladder row: run_row.sh TAG NAME SEED [overrides...] -> outputs/ladder/runs/TAG/NAME/seedSEED/metrics.json
# TAG names the backbone setting (its overrides come in the extra arguments, e.g. model=efficientnet_lite2).
# Environment: DATA (generated data), DETECTOR (YOLO best.pt), OUT (default outputs/ladder): the detection
# and feature caches live under $OUT/logs and are shared by every row of every backbone.
set -euo pipefail
TAG=$1 NAME=$2 SEED=$3
shift 3
OUT=$(realpath -m "${OUT:-outputs/ladder}")
RUN=$OUT/runs/$TAG/$NAME/seed$SEED
mkdir -p "$RUN"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} fashion-retrieval train-adapter \
  paths.data_dir="$DATA" paths.log_dir="$OUT/logs" detector=yolo detector.weights="$DETECTOR" \
  detection_cache="$OUT/logs/detection_cache" logger=csv seed="$SEED" adapter.pairs=pseudo \
  hydra.run.dir="$RUN" "$@" > "$RUN/stdout.log" 2>&1
