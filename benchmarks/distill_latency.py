"""Teacher vs student for the ``distill`` table: latency per query and model size.

    python benchmarks/distill_latency.py --frozen lite2=efficientnet_lite2 \
        --ckpt lite0_student=outputs/RUN/checkpoints/best.ckpt --threads 1 \
        --output benchmarks/results/distill.md

Each model embeds one photo (batch 1, a random ``uint8`` image at its native input size, and at the
quickstart's query size 192 x 128) with ``--threads`` torch threads: median and 90th percentile of
``--repeats`` forwards after ``--warmup`` (``onnx_encoder.timed``). ``--frozen NAME=MODEL_CONFIG``: a
``conf/model/`` config used frozen (pooled backbone features, no head, as a frozen teacher embeds);
``--ckpt NAME=PATH``: a trained checkpoint (its head included). Size: parameters and their float32 MB.
Appends a Markdown table to ``--output`` (prints it without).
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
from collections.abc import Callable
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from onnx_encoder import timed  # benchmarks/ is the script's folder, first on sys.path
from torch import nn

from fashion_retrieval.cli import config_dir
from fashion_retrieval.models.checkpoint import load_encoder

QUERY_SIZE = (192, 128)


def frozen_encoder(config_name: str) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor], nn.Module]:
    """``(encoder, embed, weights)`` of a ``conf/model/`` config used frozen: ``backbone_features``."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"model={config_name}"])
    encoder = instantiate(cfg.model.encoder).eval()
    return encoder, encoder.backbone_features, encoder.backbone


def named(pairs: list[str], flag: str) -> list[tuple[str, str]]:
    found = []
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator:
            raise SystemExit(f"{flag} {pair!r}: expected NAME=VALUE")
        found.append((name, value))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frozen", nargs="*", default=[], metavar="NAME=MODEL_CONFIG")
    parser.add_argument("--ckpt", nargs="*", default=[], metavar="NAME=PATH")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = [(name, *frozen_encoder(config)) for name, config in named(args.frozen, "--frozen")]
    for name, path in named(args.ckpt, "--ckpt"):
        encoder = load_encoder(path)
        models.append((name, encoder, encoder, encoder))
    rows = []
    for name, encoder, embed, weights in models:
        parameters = sum(p.numel() for p in weights.parameters())
        native = tuple(encoder.native_input_size)
        cells = []
        for size in (native, QUERY_SIZE):
            image = torch.randint(0, 256, (1, 3, *size), dtype=torch.uint8)
            with torch.no_grad():
                median, p90 = timed(embed, image, args.warmup, args.repeats)
            cells.append(f"{median:.1f} / {p90:.1f}")
        dim = int(embed(torch.zeros(1, 3, *native, dtype=torch.uint8)).shape[1])
        rows.append(
            f"| {name} | {native[0]} x {native[1]} | {cells[0]} | {cells[1]} | {parameters / 1e6:.2f} M | "
            f"{parameters * 4 / 2**20:.1f} | {dim} |"
        )
    table = [
        f"### {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"torch {torch.__version__}, {args.threads} thread(s)",
        "",
        f"one photo (batch 1), median / p90 of {args.repeats} forwards (ms) after {args.warmup}",
        "",
        "| model | native size | ms at native size | ms at 192 x 128 | parameters | MB (float32) | dim |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    text = "\n".join(table)
    print(text)
    if args.output:
        with args.output.open("a") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
