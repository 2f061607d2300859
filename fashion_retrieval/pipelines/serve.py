"""``fashion-retrieval serve``: search as a service (HTTP API and web page) over a trained run.

``run_dir=<run directory>`` (its config, best checkpoint and index; keys named on the command line, such as
``detector=yolo detector.weights=...`` or ``encoder.backend=onnx``, replace the run's) or ``ckpt_path=``
with ``index.dir=``. The service spec is written to the stage's output directory and every uvicorn worker
builds its service from it (docs/serving.md): this process imports neither torch nor the search stack
unless it is the only worker (``serve.workers=1``). Blocks until interrupted.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig

from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.serving.spec import SPEC_ENV, service_spec

log = logging.getLogger(__name__)

SPEC_FILE = "serve_spec.yaml"


def command_line_overrides() -> list[str]:
    """The overrides of the current Hydra job (none outside one)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def serve(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    try:
        import uvicorn
    except ImportError as error:
        raise ImportError(f'serve needs the serve extra: pip install -e ".[serve]" ({error})') from error
    spec = service_spec(cfg, command_line_overrides())
    path = Path(context.output_dir) / SPEC_FILE
    spec.save(path)
    os.environ[SPEC_ENV] = str(path)
    settings = cfg.serve
    log.info(
        "serve: http://%s:%d/ (%d worker(s); spec %s)", settings.host, settings.port, settings.workers, path
    )
    uvicorn.run(
        "fashion_retrieval.serving.app:app_from_environment",
        factory=True,
        host=str(settings.host),
        port=int(settings.port),
        workers=int(settings.workers),
        timeout_keep_alive=int(settings.timeout_keep_alive),
        limit_concurrency=settings.limit_concurrency,
    )
    return {}
