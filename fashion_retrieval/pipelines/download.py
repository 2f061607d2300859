"""``download``: fetch the URL images of the catalogue in ``paths.data_dir`` (the real challenge CSVs)."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig

from fashion_retrieval.data.download import DownloadIncompleteError, DownloadSettings, download_images
from fashion_retrieval.pipelines.context import RunContext


def download(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    """Fetch the images; raises :class:`DownloadIncompleteError` (a non-zero exit) when any is missing."""
    settings: DownloadSettings = instantiate(cfg.download, _convert_="all")
    report = download_images(cfg.paths.data_dir, settings)
    if report.failed:
        raise DownloadIncompleteError(
            f"download: {report.failed} image(s) could not be fetched ({report}); they are listed in "
            f"{report.failures_path}. Rerun `download` to retry them, or train without them with "
            "data.missing_images=skip."
        )
    return {
        "download/downloaded": report.downloaded,
        "download/skipped": report.skipped,
        "download/failed": report.failed,
    }
