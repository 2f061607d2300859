"""``download``: fetch the URL images of the catalogue in ``paths.data_dir`` (the real challenge CSVs)."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig

from fashion_retrieval.data.download import DownloadSettings, download_images
from fashion_retrieval.pipelines.context import RunContext


def download(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    settings: DownloadSettings = instantiate(cfg.download, _convert_="all")
    report = download_images(cfg.paths.data_dir, settings)
    return {
        "download/downloaded": report.downloaded,
        "download/skipped": report.skipped,
        "download/failed": report.failed,
    }
