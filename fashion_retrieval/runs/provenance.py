"""``provenance.json``: what produced a run (code version, overrides, seed, libraries, machine).

Each piece is a small function that never raises: provenance is written at the start of every run, and
a missing ``git`` or an unreadable ``/proc`` must cost a ``null``, not the run.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from fashion_retrieval.pipelines.registry import GPU_FREE_STAGES

PROVENANCE_FILE = "provenance.json"
GIT_TIMEOUT_S = 20.0  # generous: a loaded machine can be slow; a hung git must not block the run

# Label -> the import names that provide it, first installed wins. Looked up by module, not by distribution
# name: one module comes from several distributions (faiss from faiss-cpu or faiss-gpu, ultralytics from
# ultralytics or ultralytics-opencv-headless).
PACKAGES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "pytorch-lightning": ("pytorch_lightning", "lightning"),
    "hydra-core": ("hydra",),
    "transformers": ("transformers",),
    "timm": ("timm",),
    "ultralytics": ("ultralytics",),
    "faiss": ("faiss",),
    "albumentations": ("albumentations",),
    "wandb": ("wandb",),
    "numpy": ("numpy",),
}


def _git(source_dir: Path, *arguments: str) -> str:
    """Output of ``git -C source_dir arguments``; raises ``OSError``/``SubprocessError`` on any failure."""
    result = subprocess.run(
        ["git", "-C", str(source_dir), *arguments],
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
        check=True,
    )
    return result.stdout.strip()


def git_state(source_file: str | Path) -> dict[str, Any]:
    """Commit and dirtiness of the git checkout that tracks ``source_file`` (the package's own file).

    Returns ``{"commit": sha | None, "dirty": bool | None, "reason": None | why unknown}``. The file must
    be tracked, not merely inside a work tree: a wheel installed in a virtualenv that lives inside some
    other repository would otherwise report that repository's commit.
    """
    source = Path(source_file).resolve()
    try:
        _git(source.parent, "ls-files", "--error-unmatch", source.name)
        commit = _git(source.parent, "rev-parse", "HEAD")
        # Tracked files only: untracked outputs/ or notebooks do not change what the code computes.
        dirty = bool(_git(source.parent, "status", "--porcelain", "--untracked-files=no"))
    except FileNotFoundError:
        return {"commit": None, "dirty": None, "reason": "git is not installed"}
    except subprocess.TimeoutExpired:
        return {"commit": None, "dirty": None, "reason": f"git took over {GIT_TIMEOUT_S:g} s"}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None, "reason": f"{source} is not in a git checkout"}
    return {"commit": commit, "dirty": dirty, "reason": None}


def package_versions(packages: Mapping[str, Sequence[str]] = PACKAGES) -> dict[str, str | None]:
    """Python's version and the installed version of the distribution providing each label's first
    importable module (``None`` when none is installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    providers = importlib.metadata.packages_distributions()  # top-level module -> distribution names
    for label, modules in packages.items():
        versions[label] = None
        for distribution in (name for module in modules for name in providers.get(module, ())):
            try:
                versions[label] = importlib.metadata.version(distribution)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return versions


def total_memory_bytes() -> int | None:
    """Physical memory from ``sysconf`` (Linux, most Unixes); ``None`` where it is not offered."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def cuda_devices() -> list[str] | None:
    """Names of the visible CUDA devices; ``[]`` without CUDA, ``None`` without torch.

    ``torch.cuda.is_available`` asks the driver for a device count without creating a CUDA context, so a
    CPU-only machine never initialises CUDA; device names are read only when devices exist.
    """
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]


def hardware(with_cuda: bool = True) -> dict[str, Any]:
    """Platform, CPU count, total memory and (``with_cuda``) CUDA devices of this machine; without it
    ``cuda_devices`` is ``None``."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": total_memory_bytes(),
        "cuda_devices": cuda_devices() if with_cuda else None,
    }


def hydra_overrides() -> dict[str, list[str]] | None:
    """The current Hydra job's overrides: ``task`` (the config's) and ``hydra`` (run dir, job name, ...);
    ``None`` outside Hydra (tests, API calls)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    overrides = HydraConfig.get().overrides
    return {"task": list(overrides.task), "hydra": list(overrides.hydra)}


def provenance(cfg: DictConfig, stages: Sequence[str]) -> dict[str, Any]:
    """Everything ``provenance.json`` records about the run that is starting."""
    import fashion_retrieval

    return {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "stages": list(stages),
        "overrides": hydra_overrides(),
        "seed": cfg.get("seed"),
        "git": git_state(fashion_retrieval.__file__),
        "packages": package_versions(),
        # Stages that never touch torch or a GPU: importing torch only to name GPUs would cost them seconds.
        "hardware": hardware(with_cuda=not set(stages) <= GPU_FREE_STAGES),
    }
