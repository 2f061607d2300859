"""Run machinery above the stages: run directories and their records, provenance, ``reproduce``, the Hydra
job function and ``run_stages``, which runs stages through the registry
(:mod:`fashion_retrieval.pipelines.registry`). Stages never import this package."""
