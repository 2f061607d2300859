#!/usr/bin/env bash
# Recall@15 of the re-ranking chain with each step on and off, on the synthetic validation bundles.
#   bash benchmarks/rerank_steps.sh <retrieval best.ckpt> <YOLO best.pt> <experiment> <output dir> [overrides...]
# e.g. bash benchmarks/rerank_steps.sh outputs/detection/garments/seed1/checkpoints/best.ckpt \
#        outputs/detection/yolov8n_scratch_256/detector/best.pt detection/garments outputs/rerank/table \
#        data.val_fraction=0.1 'data.crop_size=[128,96]'
# Then: python benchmarks/rerank_table.py <output dir>
set -euo pipefail
ckpt=$1 yolo=$2 experiment=$3 out=$4
shift 4
common=(experiment="$experiment" ckpt_path="$ckpt" detector=yolo detector.weights="$yolo"
        retrieval.category_mask=false index.dir="$out/index" "$@")
run() {  # name, overrides...
  local name=$1
  shift
  fashion-retrieval validate "${common[@]}" "$@" validate.name="$name" hydra.run.dir="$out/$name"
}
run none reranker=none
run original 'reranker=[section,gate,colour]'
run gate_only 'reranker=[section,gate,colour]' reranker.steps.colour=null
run colour_only 'reranker=[section,gate,colour]' reranker.steps.gate=null
run colour_ungated 'reranker=[section,gate,colour]' reranker.steps.gate=null reranker.steps.colour.gated=false
run original_metadata 'reranker=[section,gate,colour,metadata]'
