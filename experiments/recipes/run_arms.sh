#!/usr/bin/env bash
# Issue 14, section 3: the recipe arms of experiments/recipes/README.md, one job at a time (train, then the
# real-photo score of its best checkpoint), then WiSE-FT points of one trained arm (blend, validate, real
# photos). Each step logs its start, the load average and its wall clock / peak RSS; a step whose
# metrics.json exists is skipped, so the queue resumes after an interruption.
#   SEEDS="1" WISE_ALPHAS="0 0.75" experiments/recipes/run_arms.sh baseline l2_sp distill layer_decay domain_rand
# DATA (default: the shared quickstart set), OUT (default: outputs/recipes), WISE_ARM (default: baseline),
# COLLAGE_DIR (the in-domain arm in_domain_collage's collage set, generated there first if absent; default:
# data/clothing_collage_seed0, the arm config's).
# The real-photo scores come from retrieval-eval only (real_photos.enabled=false elsewhere): one embedding
# of the 3,781 photos per checkpoint instead of three. Table: python experiments/recipes/summarise.py $OUT
set -euo pipefail
DATA=${DATA:-/work/main/data/synthetic_quickstart}
OUT=$(realpath -m "${OUT:-outputs/recipes}")
SEEDS=${SEEDS:-1}
WISE_ALPHAS=${WISE_ALPHAS:-}
WISE_ARM=${WISE_ARM:-baseline}
NO_REAL=real_photos.enabled=false

step() {  # step NAME RUN_DIR COMMAND...: run unless RUN_DIR/metrics.json exists
  local name=$1 dir=$2
  shift 2
  if [[ -f $dir/metrics.json ]]; then echo "$(date -u +%H:%M:%S) skip $name (done)"; return; fi
  local timing
  timing=$(mktemp)  # one file a step: two queues writing to the same OUT must not read each other's timing
  echo "$(date -u +%H:%M:%S) start $name (load $(cut -d' ' -f1-3 /proc/loadavg))"
  /usr/bin/time -f "%e s wall, %M KB peak RSS" -o "$timing" "$@" hydra.run.dir="$dir"
  echo "$(date -u +%H:%M:%S) end $name: $(cat "$timing") (load $(cut -d' ' -f1-3 /proc/loadavg))"
  rm -f "$timing"
}

real() {  # real NAME CHECKPOINT RUN_DIR
  step "$1 real photos" "$3" fashion-retrieval retrieval-eval reader=clothing_small ckpt_path="$2" \
    retrieval_eval.name="$1" "$NO_REAL"
}

mkdir -p "$OUT"
for arm in "$@"; do
  extra=()
  if [[ $arm == in_domain_collage ]]; then
    collage=$(realpath -m "${COLLAGE_DIR:-data/clothing_collage_seed0}")
    step "collage set" "$OUT/$arm/collage" fashion-retrieval generate-collage paths.data_dir="$collage" \
      collage.seed=0
    extra=(paths.collage_train_dir="$collage")
  fi
  for seed in $SEEDS; do
    R=$OUT/$arm/seed$seed
    step "$arm seed $seed train" "$R" fashion-retrieval train experiment=recipes/"$arm" seed="$seed" \
      paths.data_dir="$DATA" "$NO_REAL" "${extra[@]}"
    real "${arm}_seed$seed" "$R/checkpoints/best.ckpt" "$R/real_photos"
  done
done
for alpha in $WISE_ALPHAS; do
  seed=${SEEDS%% *}
  W=$OUT/wise_ft/$WISE_ARM/seed$seed/alpha$alpha
  step "wise-ft $WISE_ARM seed $seed alpha $alpha" "$W/blend" fashion-retrieval wise-ft \
    ckpt_path="$OUT/$WISE_ARM/seed$seed/checkpoints/best.ckpt" wise_ft.alpha="$alpha" \
    wise_ft.output_path="$W/wise_ft.ckpt"
  step "validate alpha $alpha" "$W/validate" fashion-retrieval validate experiment=recipes/"$WISE_ARM" \
    paths.data_dir="$DATA" ckpt_path="$W/wise_ft.ckpt" "$NO_REAL"
  real "wise_ft_${WISE_ARM}_seed${seed}_alpha$alpha" "$W/wise_ft.ckpt" "$W/real_photos"
done
