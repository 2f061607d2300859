"""FeatureAdapterEvaluator: the adapter's validation queries scored against the whole catalogue."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fashion_retrieval.callbacks.adapter_evaluator import FeatureAdapterEvaluator
from fashion_retrieval.models.adapter_module import FeatureAdapterModule


def test_queries_cut_by_limit_val_batches_are_left_out_with_their_truth():
    catalogue = torch.eye(3)
    datamodule = SimpleNamespace(
        catalogue_features=catalogue,
        val_truth=[[0], [2], [2]],
        validation_sections=lambda: (np.zeros(3, dtype=np.int64), np.full(3, -1, dtype=np.int64)),
    )
    module = FeatureAdapterModule(3)  # no heads: the frozen features themselves
    evaluator = FeatureAdapterEvaluator(ks=(1,))
    trainer = SimpleNamespace(sanity_checking=False, datamodule=datamodule)
    evaluator.on_validation_epoch_start(trainer, module)
    # Only the first batch was validated: queries 1 and 0 (out of order); query 2 never ran.
    outputs = {"index": torch.tensor([1, 0]), "embeddings": catalogue[[1, 0]]}
    evaluator.on_validation_batch_end(trainer, module, outputs, {}, 0)
    metrics = evaluator.validation_metrics(datamodule, module)
    # Query 0 finds product 0, query 1 finds product 1 instead of 2; query 2 would make it 1 / 3.
    assert metrics["recall@1"] == pytest.approx(1 / 2)
    assert metrics["hit_rate@1"] == pytest.approx(1 / 2)
