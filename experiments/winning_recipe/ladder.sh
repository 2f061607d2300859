#!/usr/bin/env bash
# Issue 7's ladder (rows 1-6) for one backbone setting, one row at a time (the feature cache is filled by the
# first run and reused by every later one, across backbones too: an ensemble reuses its members' entries).
#   DATA=... DETECTOR=.../best.pt experiments/winning_recipe/ladder.sh TAG "SEEDS" OVERRIDES...
# e.g. ladder.sh lite2_260 "0 1 2" model=efficientnet_lite2
#      ladder.sh lite0_128x96 "0 1 2" model=efficientnet_lite0 adapter.image_size=[128,96]
#      ladder.sh ensemble_native "0" model=ensemble_lite
# A row whose metrics.json exists is skipped (a rerun resumes).
# Results: outputs/ladder/runs/TAG/ROW/seedN/metrics.json; table: python experiments/winning_recipe/table.py
set -euo pipefail
HERE=$(dirname "$0")
TAG=$1 SEEDS=$2
shift 2
export OUT=$(realpath -m "${OUT:-outputs/ladder}")
E="trainer.max_epochs=30 trainer.gradient_clip_val=1.0"
PLAIN="adapter.module.bank_size=0 adapter.module.noise_std=0 adapter.module.mixup_probability=0
  adapter.module.loss.label_smoothing=0 adapter.module.loss.margin=0"
row() {  # row NAME SEED OVERRIDES...: run unless its metrics.json exists, so a rerun resumes the queue
  if [[ -f $OUT/runs/$TAG/$1/seed$2/metrics.json ]]; then echo "$(date -u +%H:%M:%S) skip $TAG $1 seed $2 (done)"; return; fi
  echo "$(date -u +%H:%M:%S) $TAG $1 seed $2 (load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$HERE/run_row.sh" "$TAG" "$@"
  echo "$(date -u +%H:%M:%S) end $TAG $1 seed $2 (load $(cut -d' ' -f1-3 /proc/loadavg))"
}
row r1_frozen 0 "$@" adapter=none   # deterministic: one seed
for SEED in $SEEDS; do
  H=$OUT/runs/$TAG/r4_regularised/seed$SEED/adapter/head.pt
  # shellcheck disable=SC2086  # $E and $PLAIN are lists of overrides
  row r4_regularised "$SEED" "$@" adapter=residual_adapter $E adapter.module.bank_size=2048
  row r5_timestamp "$SEED" "$@" adapter=residual_adapter adapter.head_path="$H" reranker=timestamp
  row r6_priors "$SEED" "$@" adapter=residual_adapter adapter.head_path="$H" 'reranker=[timestamp,article,bundle_priors]'
  # shellcheck disable=SC2086
  row r2_adapter "$SEED" "$@" adapter=residual_adapter $E $PLAIN
  # shellcheck disable=SC2086
  row r3_bank "$SEED" "$@" adapter=residual_adapter $E $PLAIN adapter.module.bank_size=2048
done
