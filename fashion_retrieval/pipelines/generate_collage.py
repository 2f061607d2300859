"""``generate-collage``: write the real-photo collage set (``fashion_retrieval.synthetic.collage``) into
``paths.data_dir``; reused when that directory already holds the same set."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.synthetic.collage import CollageSpec, same_collage_exists
from fashion_retrieval.synthetic.collage import generate_collage as write_collage

log = logging.getLogger(__name__)


def generate_collage(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    spec: CollageSpec = instantiate(cfg.collage, _convert_="all")
    data_dir = Path(cfg.paths.data_dir)
    if not cfg.generate.overwrite and same_collage_exists(spec, data_dir):
        log.info(
            "generate-collage: %s already holds this collage set (seed %d); reusing it", data_dir, spec.seed
        )
        return {}
    report = write_collage(spec, data_dir, overwrite=cfg.generate.overwrite)
    return {"generate_collage/seconds": report.seconds, "generate_collage/num_bundles": report.num_bundles}
