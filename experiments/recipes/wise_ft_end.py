"""Is the backbone of a WiSE-FT blend the pretrained one? Compares every backbone tensor of checkpoints
with the pretrained encoder named by the first one's ``encoder_config`` (alpha 0 should match exactly,
the fine-tuned run should not), so the alpha-0 end of the curve is the frozen backbone under the head.

    python experiments/recipes/wise_ft_end.py outputs/recipes/wise_ft/baseline/seed1/alpha0/wise_ft.ckpt \
        outputs/recipes/baseline/seed1/checkpoints/best.ckpt
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

from fashion_retrieval.models.checkpoint import build_encoder, load_checkpoint
from fashion_retrieval.models.wise_ft import backbone_keys
from fashion_retrieval.pipelines.wise_ft import ENCODER_PREFIX


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", type=Path, nargs="+")
    args = parser.parse_args()
    config = load_checkpoint(args.checkpoints[0])["encoder_config"]
    pretrained = build_encoder(copy.deepcopy(config)).state_dict()
    print(f"pretrained weights: {config['backbone'].get('weights')}")
    for path in args.checkpoints:
        state = load_checkpoint(path)["state_dict"]
        encoder = {
            key[len(ENCODER_PREFIX) :]: t for key, t in state.items() if key.startswith(ENCODER_PREFIX)
        }
        keys = [key for key in backbone_keys(encoder) if encoder[key].is_floating_point()]
        gaps = [float((encoder[key].double() - pretrained[key].double()).abs().max()) for key in keys]
        print(
            f"{path}: {len(keys)} floating-point backbone tensors, {sum(gap > 0 for gap in gaps)} differ "
            f"from the pretrained ones (largest absolute difference {max(gaps):.3g})"
        )


if __name__ == "__main__":
    main()
