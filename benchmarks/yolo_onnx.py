"""The YOLO detector from its ``.pt`` and from ultralytics' ONNX export of it, on the same photos.

    python benchmarks/yolo_onnx.py --pt DETECTOR/best.pt --onnx DETECTOR/best.onnx \
        --photos data/synthetic_quickstart/images/bundles --count 20 --image-size 256

Takes the first ``--count`` ``.jpg`` photos of ``--photos`` by name. Prints, for both files, the boxes
found and the milliseconds per photo (one batch of ``--count`` photos after one warm-up photo), then how
many photos got the same labels in the same order and the largest box coordinate difference (pixels) among
them. The groups are ``garment_groups`` of ``conf/config.yaml``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from PIL import Image

from fashion_retrieval.cli import config_dir
from fashion_retrieval.detection.types import Detection
from fashion_retrieval.detection.yolo import YoloDetector


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pt", required=True)
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--photos", type=Path, required=True, help="a folder of .jpg photos")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--confidence", type=float, default=0.05)
    args = parser.parse_args()
    groups = OmegaConf.to_container(OmegaConf.load(config_dir() / "config.yaml").garment_groups)
    paths = sorted(args.photos.glob("*.jpg"))[: args.count]
    if not paths:
        raise SystemExit(f"{args.photos}: no .jpg photo")
    images = [np.asarray(Image.open(path).convert("RGB")) for path in paths]
    ids = [f"photo_{i}" for i in range(len(paths))]
    found: list[list[list[Detection]]] = []
    for weights in (args.pt, args.onnx):
        detector = YoloDetector(
            groups, weights=weights, confidence=args.confidence, image_size=args.image_size
        )
        detector.detect(images[:1], ids[:1])
        start = time.perf_counter()
        found.append(detector.detect(images, ids))
        milliseconds = (time.perf_counter() - start) / len(images) * 1e3
        print(f"{weights}: {sum(map(len, found[-1]))} boxes, {milliseconds:.1f} ms per photo")
    same = [(a, b) for a, b in zip(*found) if [d.label for d in a] == [d.label for d in b]]
    gaps = [np.abs(np.subtract(x.box, y.box)).max() for a, b in same for x, y in zip(a, b)]
    print(f"same labels in the same order: {len(same)} of {len(images)} photos; ", end="")
    print(f"largest box difference among them: {max(gaps, default=0.0):.2g} px")


if __name__ == "__main__":
    main()
