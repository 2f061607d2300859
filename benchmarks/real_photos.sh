#!/usr/bin/env bash
# Category retrieval on real photos (clothing-dataset-small, read in place from ../shared/data): the 372
# test photos are the queries, the 3,409 train + validation photos the gallery, positives = same class.
# precision@10 and MAP@R of the offline ImageNet backbone before and after fine-tuning on the synthetic
# catalogue.
#   bash benchmarks/real_photos.sh <fine-tuned best.ckpt> <output dir> [overrides...]
# e.g. OMP_NUM_THREADS=1 bash benchmarks/real_photos.sh \
#        outputs/hardneg/ablation/hardneg/mined_same_category/seed1/checkpoints/best.ckpt outputs/real_photos
set -euo pipefail
ckpt=$1 out=$2
shift 2
common=(reader=clothing_small model=efficientnet_lite0 "$@")
run() {  # name, overrides...
  local name=$1
  shift
  fashion-retrieval retrieval-eval "${common[@]}" "$@" retrieval_eval.name="$name" hydra.run.dir="$out/$name"
}
run pretrained
run fine_tuned_backbone ckpt_path="$ckpt" retrieval_eval.features=backbone
run fine_tuned ckpt_path="$ckpt"
python - "$out" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
rows = [("pretrained", "ImageNet backbone, pooled features (before fine-tuning)"),
        ("fine_tuned_backbone", "fine-tuned backbone, pooled features (head bypassed)"),
        ("fine_tuned", "fine-tuned embedding (backbone + head)")]
metrics = {name: json.loads((out / name / "metrics.json").read_text()) for name, _ in rows}
first = metrics["pretrained"]
classes = sorted({k.split("/")[3] for k in first if "/class/" in k})
print("| model | precision@10 | MAP@R | CMC@1 | CMC@5 |")
print("|---|---|---|---|---|")
for name, label in rows:
    m, p = metrics[name], f"retrieval_eval/{name}"
    print(f"| {label} | {m[p + '/precision@10']:.4f} | {m[p + '/map@R']:.4f} | "
          f"{m[p + '/hit_rate@1']:.4f} | {m[p + '/hit_rate@5']:.4f} |")
print()
print("| class | " + " | ".join(f"{n} P@10 | {n} MAP@R" for n, _ in rows) + " |")
print("|---|" + "---|---|" * len(rows))
for c in classes:
    cells = []
    for name, _ in rows:
        m, p = metrics[name], f"retrieval_eval/{name}/class/{c}"
        cells += [f"{m[p + '/precision@10']:.4f}", f"{m[p + '/map@R']:.4f}"]
    print(f"| {c} | " + " | ".join(cells) + " |")
PY
