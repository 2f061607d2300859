"""The stages: one module per stage, each a function of the Hydra config (``<name>(cfg, context)``), listed
once in :mod:`fashion_retrieval.pipelines.registry`. The run machinery that chains them in a run directory
is :mod:`fashion_retrieval.runs`."""
