"""``generate``: write the synthetic dataset into ``paths.data_dir`` (reused when already there);
``generate.captions_only=true`` adds the product text files to a dataset already there (no image rendered)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.synthetic import GENERATOR_VERSION, SyntheticSpec, generate_dataset
from fashion_retrieval.synthetic.captions import add_captions
from fashion_retrieval.synthetic.writer import GENERATOR_NAME, read_metadata

log = logging.getLogger(__name__)


def same_dataset_exists(spec: SyntheticSpec, data_dir: Path) -> bool:
    """True when ``data_dir`` holds a complete dataset made from exactly this spec by this generator."""
    metadata = data_dir / "metadata.json"
    if not metadata.is_file():
        return False
    recorded = read_metadata(metadata)
    same_spec = recorded.get("spec") == json.loads(json.dumps(asdict(spec)))
    same_generator = recorded.get("generator", GENERATOR_NAME) == GENERATOR_NAME
    return same_spec and same_generator and recorded.get("generator_version") == GENERATOR_VERSION


def generate(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    spec: SyntheticSpec = instantiate(cfg.synthetic)
    data_dir = Path(cfg.paths.data_dir)
    if cfg.generate.get("captions_only", False):
        count = add_captions(spec, data_dir)
        log.info("generate: wrote %d captions of %d products into %s", count, spec.num_products, data_dir)
        return {}
    if not cfg.generate.overwrite and same_dataset_exists(spec, data_dir):
        log.info("generate: %s already holds this dataset (seed %d); reusing it", data_dir, spec.seed)
        return {}
    report = generate_dataset(
        spec, data_dir, num_workers=cfg.generate.num_workers, overwrite=cfg.generate.overwrite
    )
    log.info("generate: %s", report)
    return {"generate/seconds": report.seconds, "generate/images_per_second": report.images_per_second}
