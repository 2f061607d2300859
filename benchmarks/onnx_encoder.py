"""Embedding latency of a trained encoder: PyTorch against its ONNX export (onnxruntime), same images.

    python benchmarks/onnx_encoder.py --ckpt RUN/checkpoints/best.ckpt --onnx RUN/encoder.onnx \
        --size 192 128 --batches 1 64 --threads 1 2 --output benchmarks/results/onnx_encoder.md

For each thread count (torch's intra-op threads, onnxruntime's ``intra_op_num_threads``) and batch size, the
median and 90th percentile of ``--repeats`` forwards of one random ``uint8`` batch, after ``--warmup``
forwards; the embeddings of both backends are compared (minimum cosine) on every batch. Appends a
Markdown table to ``--output`` (prints it without).
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fashion_retrieval.models.checkpoint import load_encoder
from fashion_retrieval.models.onnx_encoder import OnnxEncoder, embedding_cosines


def timed(
    forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, warmup: int, repeats: int
) -> tuple[float, float]:
    """Median and 90th percentile milliseconds of ``repeats`` calls ``forward(images)`` after ``warmup``."""
    for _ in range(warmup):
        forward(images)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward(images)
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds) * 1e3), float(np.percentile(seconds, 90) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--size", type=int, nargs=2, default=(192, 128), metavar=("H", "W"))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    encoder = load_encoder(args.ckpt)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        onnx_encoder = OnnxEncoder(args.onnx, threads=threads)
        for batch in args.batches:
            images = torch.randint(0, 256, (batch, 3, *args.size), dtype=torch.uint8)
            with torch.no_grad():
                torch_ms = timed(encoder, images, args.warmup, args.repeats)
                cosine = embedding_cosines(encoder(images).numpy(), onnx_encoder(images).numpy()).min()
            onnx_ms = timed(onnx_encoder, images, args.warmup, args.repeats)
            rows.append(
                f"| {threads} | {batch} | {torch_ms[0]:.1f} / {torch_ms[1]:.1f} | "
                f"{onnx_ms[0]:.1f} / {onnx_ms[1]:.1f} | {torch_ms[0] / onnx_ms[0]:.2f} | {cosine:.7f} |"
            )
    table = [
        f"### {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"torch {torch.__version__}",
        "",
        f"`{args.ckpt}` at {args.size[0]} x {args.size[1]}, median / p90 of {args.repeats} forwards (ms)",
        "",
        "| threads | batch | PyTorch ms | ONNX Runtime ms | speed-up | min cosine |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    text = "\n".join(table)
    if args.output is None:
        print(text)
    else:
        with args.output.open("a") as handle:
            handle.write(text + "\n")
        print(text)


if __name__ == "__main__":
    main()
