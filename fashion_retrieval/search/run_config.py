"""A trained run's search config, read from its run directory as data (``config_resolved.yaml``): plain
YAML, every class it names checked to be one of this project's before anything is built (docs/security.md),
and ``data:`` sections of runs made before issue 16 upgraded to today's keys.

Apart from the classes a check imports to see that they are classes (``check_built_targets(...,
classes=True)``), it imports no search stack: ``serve``'s parent process reads a run with it and leaves the
loading to its workers (docs/serving.md "Start-up").
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fashion_retrieval.io import HYDRA_BUILD_KEYS, RUN_CONFIG_FILE, read_yaml
from fashion_retrieval.renamed import renamed_section_keys

log = logging.getLogger(__name__)

BEST_CHECKPOINT = "checkpoints/best.ckpt"
# Besides `_target_` (a class of ours) and `_partial_`, a stored config may not steer how Hydra builds.
REFUSED_BUILD_KEYS = ("_args_", "_recursive_", "_convert_")
# The config sections a Retriever builds objects from. `data:` is not one: it is read as plain values
# (CatalogueData.from_config), so checking it would only import the Lightning data module it names.
BUILT_SECTIONS = ("detector", "reranker", "crops", "index")


def check_built_targets(node: object, where: str, classes: bool = True) -> None:
    """Raise ValueError unless every ``_target_`` under ``node`` names a class of ``fashion_retrieval`` and
    no other Hydra key asks for more than building it (``_partial_`` is allowed: still our class). Only
    modules of this package are imported to check that a target is a class; ``classes=False`` checks the
    names only, importing nothing (for a process that builds nothing: ``serve``'s parent, whose workers
    check again in full before building)."""
    if isinstance(node, Mapping):
        target = node.get("_target_")
        if target is not None:
            ours = isinstance(target, str) and target.startswith("fashion_retrieval.")
            if not ours or (classes and not isinstance(_located(target), type)):
                raise ValueError(
                    f"{where}._target_ = {target!r}: a run directory's config may only build classes of "
                    "fashion_retrieval (docs/security.md)"
                )
        for key, value in node.items():
            if key in REFUSED_BUILD_KEYS:
                raise ValueError(f"{where}.{key}: a run directory's config may not set Hydra's {key}")
            check_built_targets(value, f"{where}.{key}", classes)
    elif isinstance(node, list):
        for position, value in enumerate(node):
            check_built_targets(value, f"{where}[{position}]", classes)


def _located(target: str) -> object:
    """The attribute a dotted ``module.name`` path names, ``None`` when there is none."""
    module, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


# `data:` keys of run directories made before issue 16 split the data module (docs/configs.md): the four
# detector keys became one `detected_garments` block, and the renamed keys (`gallery_size` is
# `catalogue_size`) come from the project's one rename table.
LEGACY_DETECTED_GARMENT_KEYS = {
    "garment_detector": "detector",
    "garment_crops": "crops",
    "detected_garment_iou": "min_iou",
    "detection_cache": "cache",
}
LEGACY_DATA_KEYS = renamed_section_keys("data")
DETECTED_GARMENTS_TARGET = "fashion_retrieval.detection.garment_matching.DetectedGarments"


def upgrade_data_section(content: dict, path: Path) -> dict:
    """``content`` (a stored resolved config) with a pre-issue-16 ``data:`` section rewritten to today's
    keys, so run directories made before the data module's split still load; unchanged otherwise."""
    data = content.get("data")
    if not isinstance(data, dict) or not any(
        key in data for key in (*LEGACY_DETECTED_GARMENT_KEYS, *LEGACY_DATA_KEYS)
    ):
        return content
    block = {new: data[old] for old, new in LEGACY_DETECTED_GARMENT_KEYS.items() if old in data}
    renamed = [old for old in LEGACY_DATA_KEYS if old in data]
    data = {LEGACY_DATA_KEYS.get(k, k): v for k, v in data.items() if k not in LEGACY_DETECTED_GARMENT_KEYS}
    if block:
        data["detected_garments"] = {"_target_": DETECTED_GARMENTS_TARGET, **block}
        log.info("%s: data.%s read as data.detected_garments (renamed by issue 16)", path, "/".join(block))
    for old in renamed:
        log.info("%s: data.%s read as data.%s (renamed by issue 16)", path, old, LEGACY_DATA_KEYS[old])
    return {**content, "data": data}


def load_run_config(run_dir: str | Path, overrides: Sequence[str] = (), classes: bool = True) -> DictConfig:
    """The resolved config of a run directory (``config_resolved.yaml``, read as plain YAML data) with
    ``overrides`` (``key=value`` dotlist, plain values only) applied, and ``index.dir`` pointed at the
    run's ``index/`` unless overridden. The sections a
    :class:`~fashion_retrieval.search.retriever.Retriever` builds are checked to name only classes of this
    project (:func:`check_built_targets`, its ``classes`` flag)."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a run directory?")
    content = read_yaml(path)
    if not isinstance(content, dict):
        raise ValueError(f"{path}: not a config (a YAML mapping)")  # noqa: TRY004 (bad file content)
    building = [o for o in overrides if any(key in o for key in HYDRA_BUILD_KEYS)]
    if building:
        raise ValueError(f"override {building[0]!r} names what Hydra would build; give plain values only")
    cfg = OmegaConf.create(upgrade_data_section(content, path))
    cfg.index.dir = str(run_dir / "index")
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    assert isinstance(cfg, DictConfig)
    for section in BUILT_SECTIONS:
        check_built_targets(OmegaConf.to_container(cfg.get(section) or {}), f"{path}: {section}", classes)
    return cfg
