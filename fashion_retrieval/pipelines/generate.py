"""``generate``: write the synthetic dataset into ``paths.data_dir`` (reused when already there; one of an
older generator version whose catalogue this one reproduces only gets the product text files added);
``generate.captions_only=true`` adds the text files to the dataset there, refusing when it cannot."""

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
from fashion_retrieval.synthetic.writer import GENERATOR_NAME, SAME_CATALOGUE_VERSIONS, read_metadata

log = logging.getLogger(__name__)


def recorded_version(spec: SyntheticSpec, data_dir: Path) -> str | None:
    """The generator version of the complete dataset made from exactly this spec by this generator in
    ``data_dir``, or ``None`` (no dataset, another spec or generator)."""
    metadata = data_dir / "metadata.json"
    if not metadata.is_file():
        return None
    recorded = read_metadata(metadata)
    same_spec = recorded.get("spec") == json.loads(json.dumps(asdict(spec)))
    same_generator = recorded.get("generator", GENERATOR_NAME) == GENERATOR_NAME
    version = recorded.get("generator_version")
    return str(version) if same_spec and same_generator and version is not None else None


def same_dataset_exists(spec: SyntheticSpec, data_dir: Path) -> bool:
    """True when ``data_dir`` holds a complete dataset made from exactly this spec by this generator."""
    return recorded_version(spec, data_dir) == GENERATOR_VERSION


def generate(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    spec: SyntheticSpec = instantiate(cfg.synthetic)
    data_dir = Path(cfg.paths.data_dir)
    if cfg.generate.get("captions_only", False):
        count = add_captions(spec, data_dir)
        log.info("generate: wrote %d captions of %d products into %s", count, spec.num_products, data_dir)
        return {}
    version = None if cfg.generate.overwrite else recorded_version(spec, data_dir)
    if version == GENERATOR_VERSION:
        log.info("generate: %s already holds this dataset (seed %d); reusing it", data_dir, spec.seed)
        return {}
    if version in SAME_CATALOGUE_VERSIONS:
        # Only the text files are new since: add them rather than render every image again.
        try:
            count = add_captions(spec, data_dir)
        except ValueError as error:
            log.warning("generate: %s; regenerating %s", error, data_dir)
        else:
            log.info("generate: %s was generator %s's; added its %d captions", data_dir, version, count)
            return {}
    report = generate_dataset(
        spec, data_dir, num_workers=cfg.generate.num_workers, overwrite=cfg.generate.overwrite
    )
    log.info("generate: %s", report)
    return {"generate/seconds": report.seconds, "generate/images_per_second": report.images_per_second}
