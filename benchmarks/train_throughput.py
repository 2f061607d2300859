"""Training throughput of the image towers: images/s of one full fine-tuning step.

    python benchmarks/train_throughput.py --batch 256 --precision bf16 \
        --output benchmarks/results/train_throughput.md
    python benchmarks/train_throughput.py --device cpu --batch 4 --steps 2 --warmup 1   # CPU smoke test, fp32

One step = forward of ``uint8`` images (generated once on the device, so data loading is not measured)
through the encoder (its own input normalisation included), symmetric InfoNCE between the two halves of
the batch, backward, AdamW step; every parameter trains. Random initialisation: no weights needed.
Prints one markdown table row per model and, with ``--output``, appends them to that file.

Imports only torch, timm, transformers and :mod:`fashion_retrieval.models` pieces that need neither
Hydra nor the data stack, so it runs on a bare GPU machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

if importlib.util.find_spec("fashion_retrieval") is None:  # run from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fashion_retrieval.io import atomic_open
from fashion_retrieval.models.backbones import TimmBackbone
from fashion_retrieval.models.clip import ClipVisionBackbone
from fashion_retrieval.models.encoder import ImageEncoder

# ViT-B/32: the architecture of openai/clip-vit-base-patch32 and of Fashion-CLIP.
VIT_B32 = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "patch_size": 32,
    "image_size": 224,
    "projection_dim": 512,
}

HEADER = (
    "# Training throughput\n\n"
    "Measured by `benchmarks/train_throughput.py` (one row per model and run, appended): full fine-tuning "
    "step (forward of uint8 images, symmetric InfoNCE, backward, AdamW), random init, synthetic input "
    "already on the device (data loading not included). Peak memory: CUDA allocator peak on GPU, process "
    "peak RSS on CPU.\n\n"
    "| date (UTC) | device | model | params M | batch | image | precision | channels_last | compile "
    "| images/s | ms/step | peak memory GiB |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def build_clip_vit_b32(channels_last: bool) -> nn.Module:
    """Fashion-CLIP's tower: ViT-B/32 vision model + visual projection, no extra head."""
    backbone = ClipVisionBackbone("random", vision_config=VIT_B32)
    return ImageEncoder(backbone, embedding_dim=None, channels_last=channels_last)


def build_convnext_tiny(channels_last: bool) -> nn.Module:
    """ConvNeXt-Tiny (timm) with a 256-d linear head."""
    return ImageEncoder(
        TimmBackbone("convnext_tiny", weights="random"), embedding_dim=256, channels_last=channels_last
    )


MODELS: dict[str, Callable[[bool], nn.Module]] = {
    "clip_vit_b32": build_clip_vit_b32,
    "convnext_tiny": build_convnext_tiny,
}


def symmetric_info_nce(embeddings: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """``(B, D)`` unit rows, B even: the first half are queries, the second half their positives."""
    query, gallery = embeddings.float().chunk(2)
    logits = query @ gallery.T / temperature
    labels = torch.arange(len(query), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def train_step(
    encoder: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, precision: str
) -> torch.Tensor:
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        embeddings = encoder(images)
    loss = symmetric_info_nce(embeddings)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"CPU {line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    except OSError:
        pass
    return f"CPU {platform.processor() or platform.machine()}"


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


@dataclass
class Result:
    model: str
    params_m: float
    images_per_s: float | None  # None: out of memory
    ms_per_step: float | None
    peak_gib: float


def measure(name: str, args: argparse.Namespace, device: torch.device) -> Result:
    """Warm-up steps, then ``args.steps`` timed steps of one model."""
    torch.manual_seed(0)
    encoder = MODELS[name](args.channels_last).to(device).train()
    params_m = sum(p.numel() for p in encoder.parameters()) / 1e6
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=1e-5, weight_decay=1e-3)
    step_encoder = torch.compile(encoder) if args.compile else encoder
    images = torch.randint(0, 256, (args.batch, 3, args.image_size, args.image_size), dtype=torch.uint8)
    images = images.to(device)
    if args.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    try:
        for _ in range(args.warmup):
            train_step(step_encoder, optimizer, images, args.precision)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            train_step(step_encoder, optimizer, images, args.precision)
        synchronize(device)
        elapsed = time.perf_counter() - start
    except torch.cuda.OutOfMemoryError:
        return Result(name, params_m, None, None, peak_memory_gib(device))
    speed, step_ms = args.batch * args.steps / elapsed, 1000 * elapsed / args.steps
    return Result(name, params_m, speed, step_ms, peak_memory_gib(device))


def table_row(result: Result, args: argparse.Namespace, device: torch.device) -> str:
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    speed = "OOM" if result.images_per_s is None else f"{result.images_per_s:.1f}"
    step = "OOM" if result.ms_per_step is None else f"{result.ms_per_step:.1f}"
    cells = [
        date,
        device_name(device),
        result.model,
        f"{result.params_m:.1f}",
        str(args.batch),
        f"{args.image_size}px",
        args.precision,
        "yes" if args.channels_last else "no",
        "yes" if args.compile else "no",
        speed,
        step,
        f"{result.peak_gib:.2f}",
    ]
    return "| " + " | ".join(cells) + " |"


def append_rows(path: Path, rows: list[str]) -> None:
    """Append ``rows`` to the markdown table at ``path`` (created with its header), atomically."""
    text = path.read_text() if path.is_file() else HEADER
    with atomic_open(path) as handle:
        handle.write(text + "".join(row + "\n" for row in rows))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Measure training throughput of the image towers.")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--batch", type=int, default=256, help="images per step (even: two halves)")
    parser.add_argument("--image-size", type=int, default=224)
    # bf16 autocast is the GPU recipe; on CPUs without bf16 units it is ~30x slower than fp32.
    parser.add_argument("--precision", choices=["fp32", "bf16"], default=None, help="default: bf16 on GPU")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoder (off by default)")
    parser.add_argument("--output", type=Path, default=None, help="markdown file to append the rows to")
    args = parser.parse_args(argv)
    if args.batch < 2 or args.batch % 2:
        parser.error("--batch must be even (the batch is split into query and gallery halves)")
    if args.precision is None:
        args.precision = "bf16" if torch.device(args.device).type == "cuda" else "fp32"
    return args


def main(argv: list[str] | None = None) -> list[str]:
    args = parse_args(argv)
    device = torch.device(args.device)
    rows = []
    for name in args.models:
        rows.append(table_row(measure(name, args, device), args, device))
        print(rows[-1], flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.output is not None:
        append_rows(args.output, rows)
    return rows


if __name__ == "__main__":
    main()
