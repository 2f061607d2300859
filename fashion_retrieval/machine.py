"""DataLoader workers and torch threads chosen from the machine (docs/features.md, "Workers and threads").

The rule, :func:`data_path_rule`: a batch costs ``L`` seconds of loading (decode, augment, collate: one
core) and ``T`` seconds of model compute on one core.

- **CPU**: loader and model share the cores. Without workers a step takes ``L + T / c`` on ``c`` cores;
  with ``w`` workers, each on its own core, loading overlaps compute and a step takes
  ``max(L / w, T / (c - w))``. The rule takes the ``w`` with the shortest step (ties: fewer workers) and
  gives torch the other ``c - w`` cores. ``L / T`` per batch is :data:`LOAD_PER_COMPUTE`, measured for
  the quickstart's training step and catalogue embedding (``benchmarks/data_path.py``): about 0.09 and
  0.08, so a worker pays only from 4 or 5 cores on. On 2 cores a worker cost throughput in every
  measurement (issue 16: 16% of training, 7-17% of embedding; ``benchmarks/results/data_path.md``), and
  the rule keeps 0 workers and torch's own 2 threads. Assuming that threads scale linearly flatters the
  no-worker arm on many cores, so the rule errs towards fewer workers.
- **GPU (any other accelerator)**: the model computes on the device and the cores only load: every core
  but the main process's becomes a worker (at most :data:`MAX_WORKERS`), torch keeps the rest.

``cores`` are those this process may run on (affinity and a cgroup CPU quota), shared evenly by the
``processes`` of one machine (DDP). The number of workers never changes what a batch holds (the data
module keys every random draw by ``(seed, epoch, item)``), only how fast it comes.

Overrides: an explicit ``data.num_workers`` (and ``features.num_workers``, ``real_photos.num_workers``)
wins over ``${auto_workers:...}``; ``threads: N`` sets torch's count; with ``threads: auto`` a count set
by ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` is kept, and the rule only ever lowers torch's count, so a
lower ``torch.set_num_threads`` made by the caller stands.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

StageKind = Literal["train", "embed"]

# Seconds of loading per second of one-core compute for one batch of the quickstart's settings, measured
# by benchmarks/data_path.py (benchmarks/results/data_path.md: two contended runs, 1 thread, no workers).
LOAD_PER_COMPUTE: dict[str, float] = {"train": 0.09, "embed": 0.08}
MAX_WORKERS = 8  # each worker holds a copy of the dataset and its decoders; more rarely feeds a device faster
AUTO = "auto"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


@dataclass(frozen=True)
class DataPath:
    """DataLoader worker processes and torch intra-op threads for one process."""

    workers: int
    threads: int


def cpu_step_time(cores: int, workers: int, load_per_compute: float) -> float:
    """A CPU step's time in units of one-core compute ``T``: ``L + T / cores`` without workers,
    ``max(L / workers, T / (cores - workers))`` with them (``L = load_per_compute * T``)."""
    if workers == 0:
        return load_per_compute + 1.0 / cores
    return max(load_per_compute / workers, 1.0 / (cores - workers))


def data_path_rule(cores: int, accelerator: str, stage: StageKind, processes: int = 1) -> DataPath:
    """Workers and threads for one of ``processes`` processes sharing ``cores`` (the module's rule)."""
    if stage not in LOAD_PER_COMPUTE:
        raise ValueError(f"unknown stage kind {stage!r}; choose from {sorted(LOAD_PER_COMPUTE)}")
    per_process = max(1, cores // max(1, processes))
    if accelerator != "cpu":
        workers = min(per_process - 1, MAX_WORKERS)
    else:
        candidates = range(min(per_process - 1, MAX_WORKERS) + 1)
        # min() keeps the first of equal times: the fewest workers.
        workers = min(candidates, key=lambda w: cpu_step_time(per_process, w, LOAD_PER_COMPUTE[stage]))
    return DataPath(workers=workers, threads=max(1, per_process - workers))


def cgroup_cpu_limit(path: Path = CGROUP_CPU_MAX) -> int | None:
    """Whole CPUs a cgroup v2 quota allows (``cpu.max``: ``"<quota> <period>"`` or ``"max ..."``), rounded
    up; ``None`` without a quota."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def usable_cores() -> int:
    """The CPUs this process may run on: its affinity mask, capped by a cgroup quota (a container's
    ``--cpus``), which ``os.cpu_count()`` and torch's default (the host's physical cores) both ignore."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return min(cores, limit) if limit else cores


def processes_of(devices: Any) -> int:
    """Processes one machine runs for ``trainer.devices``: a count, a list of device ids, or ``auto``/``-1``
    (counted as one: on a CPU that is what Lightning runs; on a GPU machine the split is then coarser)."""
    if isinstance(devices, str):
        return int(devices) if devices.strip().isdigit() and int(devices) > 0 else 1
    if isinstance(devices, int):
        return devices if devices > 0 else 1
    return max(1, len(devices)) if hasattr(devices, "__len__") else 1


def accelerator_kind(accelerator: str) -> str:
    """``cpu`` or the device kind; Lightning's ``auto`` is a GPU when torch sees one."""
    if accelerator != AUTO:
        return str(accelerator)
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def auto_workers(stage: StageKind, *, _root_: Any) -> int:
    """The ``${auto_workers:<stage>}`` resolver: the rule's workers for the config's ``trainer``."""
    trainer = _root_.get("trainer") or {}
    accelerator = accelerator_kind(str(trainer.get("accelerator", "cpu")))
    return data_path_rule(usable_cores(), accelerator, stage, processes_of(trainer.get("devices", 1))).workers


def register_resolvers() -> None:
    """Make ``${auto_workers:train}`` / ``${auto_workers:embed}`` resolvable (the CLI's job module calls it;
    code that composes the configs itself calls it first)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("auto_workers"):
        OmegaConf.register_new_resolver("auto_workers", auto_workers)


def rule_threads(workers: int, devices: Any = 1) -> int:
    """Torch threads beside ``workers`` loader processes: this process's share of the cores, less one
    per worker (at least 1)."""
    per_process = max(1, usable_cores() // processes_of(devices))
    return max(1, per_process - workers)


@contextlib.contextmanager
def torch_threads(setting: int | str | None, workers: int, devices: Any = 1) -> Iterator[int]:
    """Run a block with torch's intra-op thread count chosen by ``setting`` (``threads:``), then restore it.

    ``setting``: a positive int: that count. ``auto`` (or ``None``): :func:`rule_threads`, only when
    neither ``OMP_NUM_THREADS`` nor ``MKL_NUM_THREADS`` is set, and only if lower than torch's current count.
    Yields the count in force.
    """
    import torch

    before = torch.get_num_threads()
    if setting is None or setting == AUTO:
        chosen = before
        user = [name for name in THREAD_VARIABLES if os.environ.get(name)]
        if user:
            log.info("threads: %d, as %s says (threads=auto)", before, user[0])
        else:
            chosen = min(before, rule_threads(workers, devices))
    elif isinstance(setting, int) and not isinstance(setting, bool) and setting > 0:
        chosen = setting
    else:
        raise ValueError(f"threads: expected a positive integer or {AUTO!r}, got {setting!r}")
    if chosen != before:
        log.info(
            "threads: torch runs %d threads beside %d loader worker(s) (was %d)", chosen, workers, before
        )
        torch.set_num_threads(chosen)
    try:
        yield chosen
    finally:
        if chosen != before:
            torch.set_num_threads(before)
