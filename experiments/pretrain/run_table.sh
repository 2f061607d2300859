#!/usr/bin/env bash
# Issue 19's table under the CPU-sized protocol of experiments/pretrain/README.md, one step at a time: per
# initialisation (row) and seed, the pre-training (self-supervised rows), the frozen backbone's real-photo
# and synthetic scores, the short fine-tuning (experiment=recipes/baseline: the quickstart recipe cut to 2
# epochs) and its real-photo score.
# A step whose metrics.json exists is skipped, so the queue resumes after an interruption; each step logs
# its start, the load average, its wall clock and peak RSS.
#   SEEDS="0" experiments/pretrain/run_table.sh random imagenet dino_synth_random dino_real_imagenet
# Rows: random | imagenet | dino_synth_random | dino_synth_imagenet | dino_real_imagenet (BN statistics
# kept) | dino_real_imagenet_bnoff (BN statistics of the crops, as pretrain_dino_quickstart) |
# simclr_real_imagenet. DATA (default: the shared quickstart set), OUT (default: outputs/pretrain_table),
# PHASES (default "pretrain frozen finetune"; a self-supervised row whose pre-training has not finished is
# skipped by the later phases).
# Table: python experiments/pretrain/summarise.py $OUT
set -euo pipefail
DATA=${DATA:-/work/main/data/synthetic_quickstart}
OUT=$(realpath -m "${OUT:-outputs/pretrain_table}")
SEEDS=${SEEDS:-0}
PHASES=${PHASES:-pretrain frozen finetune}   # which steps to run: a queue per phase shares the CPU
REAL_SIZE='retrieval_eval.image_size=[128,96]'
NO_REAL=real_photos.enabled=false
# From random weights nothing is frozen and one learning rate trains the whole network (quickstart_scratch).
FROM_RANDOM=(model.encoder.backbone.weights=random 'model.encoder.backbone.frozen_prefixes=[]')
SCRATCH_FINETUNE=('model.encoder.backbone.frozen_prefixes=[]' model.backbone_lr=null)
SYNTH_IMAGES=('pretrain.images=[packshots,bundles]' paths.data_dir="$DATA" data.val_fraction=0.15)

step() {  # step NAME RUN_DIR COMMAND...: run unless RUN_DIR/metrics.json exists
  local name=$1 dir=$2
  shift 2
  if [[ -f $dir/metrics.json ]]; then echo "$(date -u +%H:%M:%S) skip $name (done)"; return; fi
  echo "$(date -u +%H:%M:%S) start $name (load $(cut -d' ' -f1-3 /proc/loadavg))"
  mkdir -p "$dir"
  /usr/bin/time -f "%e s wall, %M KB peak RSS" -o "$dir.time" "$@" hydra.run.dir="$dir"
  echo "$(date -u +%H:%M:%S) end $name: $(cat "$dir.time") (load $(cut -d' ' -f1-3 /proc/loadavg))"
}

pretrain_args() {  # pretrain_args ROW: the pretrain overrides of a self-supervised row (none: none)
  local imagenet_dino=(experiment=pretrain_dino_quickstart pretrain.method.keep_batchnorm_statistics=true)
  case $1 in
    dino_synth_random)
      echo experiment=pretrain_dino_quickstart "${SYNTH_IMAGES[@]}" "${FROM_RANDOM[@]}" \
        pretrain.optimizer.lr=5.0e-4 ;;
    dino_synth_imagenet) echo "${imagenet_dino[@]}" "${SYNTH_IMAGES[@]}" ;;
    dino_real_imagenet) echo "${imagenet_dino[@]}" ;;
    dino_real_imagenet_bnoff)
      echo experiment=pretrain_dino_quickstart pretrain.method.keep_batchnorm_statistics=false ;;
    simclr_real_imagenet)  # pretrain_dino_quickstart's images, budget and optimiser; SimCLR's own head
      echo model=efficientnet_lite0 reader=clothing_small 'reader.train_splits=[train]' \
        'pretrain.images=[reader]' trainer.max_epochs=1 pretrain.optimizer.lr=1.0e-4 method=simclr \
        pretrain.method.crop_size=96 pretrain.method.hidden_dim=512 \
        pretrain.method.keep_batchnorm_statistics=true ;;
    random | imagenet) ;;
    *) echo "unknown row $1" >&2; exit 2 ;;
  esac
}

has() { [[ " $PHASES " == *" $1 "* ]]; }

for row in "$@"; do
  pretrain_args "$row" >/dev/null
  for seed in $SEEDS; do
    R=$OUT/$row/seed$seed
    read -r -a pre <<<"$(pretrain_args "$row")"
    case $row in
      random)
        weights=(model.encoder.backbone.weights=random)
        finetune=("${weights[@]}" "${SCRATCH_FINETUNE[@]}") ;;
      imagenet) weights=(); finetune=() ;;
      *)
        has pretrain && step "$row seed $seed pretrain" "$R/pretrain" fashion-retrieval pretrain "${pre[@]}" \
          seed="$seed"
        if [[ ! -f $R/pretrain/metrics.json ]]; then
          echo "$(date -u +%H:%M:%S) skip $row seed $seed: its pre-training has not finished"
          continue
        fi
        weights=(model.encoder.backbone.weights="$R/pretrain/backbone.safetensors")
        finetune=("${weights[@]}")
        [[ $row == *_random ]] && finetune+=("${SCRATCH_FINETUNE[@]}") ;;
    esac
    # The frozen backbone: pooled features, no head. ImageNet's figures are recorded (README.md: the same
    # commands without weights, experiments/backbones/ and experiments/quickstart/).
    if has frozen && [[ $row != imagenet ]]; then
      step "$row seed $seed frozen real photos" "$R/frozen_real" fashion-retrieval retrieval-eval \
        reader=clothing_small model=efficientnet_lite0 "${weights[@]}" "$REAL_SIZE" "$NO_REAL" seed="$seed"
      step "$row seed $seed frozen synthetic" "$R/frozen_synthetic" fashion-retrieval baselines \
        experiment=recipes/baseline paths.data_dir="$DATA" 'baselines.names=[pretrained]' \
        baselines.backbones=null "${weights[@]}" "$NO_REAL" seed="$seed"
    fi
    if has finetune; then
      step "$row seed $seed fine-tune" "$R/finetune" fashion-retrieval train experiment=recipes/baseline \
        paths.data_dir="$DATA" "${finetune[@]}" "$NO_REAL" seed="$seed"
      step "$row seed $seed fine-tuned real photos" "$R/finetune_real" fashion-retrieval retrieval-eval \
        reader=clothing_small experiment=recipes/baseline ckpt_path="$R/finetune/checkpoints/best.ckpt" \
        "$REAL_SIZE" "$NO_REAL" seed="$seed"
    fi
  done
done
