"""``train-adapter``: pseudo pairs pick the closest crop, the stage trains and scores on the tiny data, its
feature caches are reused, and ``adapter=none`` scores the frozen backbone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from payloads import write_pickle_payload
from test_configs import compose_config

from fashion_retrieval.features import FeatureCache, ShardWriter, load_features
from fashion_retrieval.features.shards import write_manifest, write_parts
from fashion_retrieval.models.adapter_module import FrozenFeatureExtractor
from fashion_retrieval.models.checkpoint import CheckpointError
from fashion_retrieval.models.ensemble import EnsembleEncoder
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.train_adapter import (
    METHOD,
    AdapterFeatures,
    adapter_datamodule,
    closest_crops,
    crop_ids,
    fit_head,
    frozen_encoder,
    load_head,
    train_adapter,
)
from fashion_retrieval.search.garments import GarmentQueries


def unit_rows(values: list[list[float]]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float32)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


def test_closest_crops_matches_a_brute_force_reference() -> None:
    rng = np.random.default_rng(0)
    crops = unit_rows(rng.normal(size=(9, 4)).tolist())
    crop_bundles = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    products = unit_rows(rng.normal(size=(5, 4)).tolist())
    pairs = np.array([[0, 1], [0, 4], [1, 0], [2, 3], [2, 1], [3, 2]])  # bundle 3 has no crop
    chosen = closest_crops(crops, crop_bundles, products, pairs)
    for (bundle, product), crop in zip(pairs, chosen):
        candidates = [i for i in range(len(crops)) if crop_bundles[i] == bundle]
        expected = max(candidates, key=lambda i: float(crops[i] @ products[product])) if candidates else -1
        assert crop == expected


def test_closest_crops_breaks_ties_towards_the_first_crop() -> None:
    crops = unit_rows([[1, 0], [1, 0], [0, 1]])
    assert closest_crops(crops, np.array([0, 0, 0]), unit_rows([[1, 0]]), np.array([[0, 0]])).tolist() == [0]


def test_crop_ids_number_the_crops_of_each_bundle() -> None:
    crops = GarmentQueries(np.array([0, 0, 2]), ["a", "a", "c"], [None, None, None], ["x"] * 3, np.zeros(3))
    assert crop_ids(["b0", "b1", "b2"], crops) == ["b0#0", "b0#1", "b2#0"]


def adapter_config(data: Path, output: Path, logs: Path, head: str, *extra: str, bank: int = 64):
    return compose_config(
        [
            "experiment=tiny",
            f"paths.data_dir={data}",
            f"paths.log_dir={logs}",
            f"adapter={head}",
            "detector=zones",
            "trainer.max_epochs=3",
            "adapter.data.batch_size=16",
            f"adapter.module.bank_size={bank}",
            *extra,
        ],
        output_dir=str(output),
    )


def manifests(logs: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in (logs / "feature_cache").glob("*/manifest.json")}


def test_the_stage_trains_scores_and_reuses_its_caches(tiny_data: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    first = train_adapter(
        adapter_config(tiny_data, tmp_path / "a", logs, "residual_adapter"), RunContext(tmp_path / "a")
    )
    assert 0.0 <= first["val_zones/recall@15"] <= 1.0
    assert first["adapter/epochs"] == 3 and first["adapter/train_pairs"] > 0
    assert (tmp_path / "a/adapter/head.pt").is_file()
    cached = manifests(logs)
    assert len(cached) == 3  # catalogue, training crops, validation crops
    second = train_adapter(
        adapter_config(tiny_data, tmp_path / "b", logs, "residual_adapter"), RunContext(tmp_path / "b")
    )
    assert manifests(logs) == cached  # nothing recomputed
    assert second["val_zones/recall@15"] == pytest.approx(first["val_zones/recall@15"])  # same seed


def test_head_none_scores_the_frozen_backbone_without_training(tiny_data: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    metrics = train_adapter(
        adapter_config(tiny_data, tmp_path / "a", logs, "none"), RunContext(tmp_path / "a")
    )
    assert "adapter/epochs" not in metrics and not (tmp_path / "a/adapter").exists()
    assert 0.0 <= metrics["val_zones/recall@15"] <= 1.0
    assert len(manifests(logs)) == 2  # catalogue and validation crops: no training crops
    json.dumps(metrics)


def test_truth_box_pairs_train_with_mined_hard_negatives(tiny_data: Path, tmp_path: Path) -> None:
    cfg = adapter_config(
        tiny_data,
        tmp_path / "a",
        tmp_path / "logs",
        "residual_adapter",
        "adapter.pairs=truth_boxes",
        "adapter.module.hard_negatives=4",
    )
    metrics = train_adapter(cfg, RunContext(tmp_path / "a"))
    assert metrics["adapter/train_pairs"] > 0 and "val_zones/recall@15" in metrics


def test_a_saved_head_scores_like_the_run_that_trained_it(tiny_data: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    trained = train_adapter(
        adapter_config(tiny_data, tmp_path / "a", logs, "residual_adapter"), RunContext(tmp_path / "a")
    )
    head = tmp_path / "a/adapter/head.pt"
    # Another bank size: the bank is training state, not part of the saved head's fit.
    cfg = adapter_config(
        tiny_data, tmp_path / "b", logs, "residual_adapter", f"adapter.head_path={head}", bank=32
    )
    reused = train_adapter(cfg, RunContext(tmp_path / "b"))
    assert "adapter/epochs" not in reused
    assert reused["val_zones/recall@15"] == pytest.approx(trained["val_zones/recall@15"])


def test_the_backbone_path_computes_the_cached_features(tiny_data: Path, tmp_path: Path) -> None:
    cfg = adapter_config(tiny_data, tmp_path / "a", tmp_path / "logs", "residual_adapter")
    encoder = frozen_encoder(cfg)
    features = AdapterFeatures(cfg, encoder, adapter_datamodule(cfg, encoder), instantiate(cfg.detector))
    directory, cached = features.catalogue()
    images = features.images(directory)
    assert images.dtype == torch.uint8 and len(images) == len(cached)
    assert tuple(images.shape[2:]) == (64, 48)  # experiment=tiny: adapter.image_size is the packshot size
    extractor = FrozenFeatureExtractor(encoder, METHOD)
    extractor.train()  # stays in eval mode
    through = torch.cat([extractor(chunk) for chunk in images.split(7)]).numpy()
    np.testing.assert_allclose(through, cached, atol=1e-5)
    assert not any(p.requires_grad for p in extractor.parameters())
    assert all(p is not q for p, q in zip(extractor.parameters(), encoder.parameters()))  # a copy
    assert load_features(directory)[1] == features.datamodule.catalogue_ids


def test_the_backbone_path_trains_the_same_head_as_the_cache(tiny_data: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    runs = {}
    for source in ("cache", "backbone"):
        cfg = adapter_config(
            tiny_data, tmp_path / source, logs, "residual_adapter", f"adapter.features={source}"
        )
        runs[source] = train_adapter(cfg, RunContext(tmp_path / source))
    cache, backbone = runs["cache"], runs["backbone"]
    assert backbone["adapter/epochs"] == cache["adapter/epochs"] == 3
    assert backbone["adapter/seconds_per_epoch"] > 0 and cache["adapter/seconds_per_epoch"] > 0
    heads = [torch.load(tmp_path / s / "adapter/head.pt") for s in ("cache", "backbone")]
    assert heads[0].keys() == heads[1].keys()  # the frozen backbone is not saved with the head
    for name, value in heads[0].items():
        torch.testing.assert_close(heads[1][name], value, atol=1e-4, rtol=1e-4, msg=name)
    assert backbone["val_zones/recall@15"] == pytest.approx(cache["val_zones/recall@15"])
    assert backbone["adapter/train_loss"] == pytest.approx(cache["adapter/train_loss"], abs=1e-4)


def test_adapter_features_must_be_cache_or_backbone(tiny_data: Path, tmp_path: Path) -> None:
    cfg = adapter_config(tiny_data, tmp_path, tmp_path / "logs", "residual_adapter", "adapter.features=gpu")
    with pytest.raises(ValueError, match=r"adapter\.features must be one of"):
        train_adapter(cfg, RunContext(tmp_path))


def test_a_head_file_is_read_as_data_only(tmp_path: Path) -> None:
    """``head.pt`` (``head.weights=``) is data: a pickle payload in it is refused before it runs."""
    marker = tmp_path / "marker"
    path = write_pickle_payload(tmp_path / "head.pt", marker, **{"query_head.weight": torch.zeros(2, 2)})
    with pytest.raises(CheckpointError, match=r"head\.pt: refused"):
        load_head(torch.nn.Linear(2, 2), path)  # type: ignore[arg-type]
    assert not marker.exists()


def test_a_head_is_not_trained_on_zero_pairs(tmp_path) -> None:
    catalogue = tmp_path / "catalogue"
    write_parts(catalogue, np.eye(3, 4, dtype=np.float32), np.arange(3), shard_size=8, rank=0, seq=0)
    write_manifest(catalogue, ["a", "b", "c"], dim=4, shard_size=8, fingerprint="f")
    cfg = adapter_config(tmp_path, tmp_path / "out", tmp_path / "logs", "residual_adapter")
    with pytest.raises(ValueError, match="no training pairs"):
        fit_head(cfg, RunContext(output_dir=tmp_path / "out"), tmp_path / "queries", catalogue, [], None)


@pytest.mark.parametrize(("size", "expected"), [("null", None), ("[40,32]", (40, 32))])
def test_crops_and_packshots_default_to_the_native_input_size(
    tiny_data: Path, tmp_path: Path, size: str, expected: tuple[int, int] | None
) -> None:
    cfg = adapter_config(tiny_data, tmp_path, tmp_path / "logs", "none", f"adapter.image_size={size}")
    encoder = frozen_encoder(cfg)
    expected = expected or encoder.native_input_size
    assert expected != (64, 48)  # differs from data.catalogue_size, so the test can fail
    datamodule = adapter_datamodule(cfg, encoder)
    packshots = next(iter(datamodule.catalogue_dataloader()))["image"]
    photo = str(datamodule.cat.bundles["image_path"].iloc[0])
    crops = next(iter(datamodule.crop_dataloader([photo], [(0.0, 0.0, 20.0, 30.0)])))["image"]
    assert tuple(packshots.shape[2:]) == tuple(crops.shape[2:]) == expected


def test_adapter_image_size_must_be_two_positive_sizes(tiny_data: Path, tmp_path: Path) -> None:
    cfg = adapter_config(tiny_data, tmp_path, tmp_path / "logs", "none", "adapter.image_size=[64]")
    with pytest.raises(ValueError, match=r"adapter\.image_size must be \[H, W\]"):
        train_adapter(cfg, RunContext(tmp_path))


def test_an_ensemble_concatenates_its_members_features_each_at_its_own_size(
    tiny_data: Path, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    cfg = adapter_config(tiny_data, tmp_path, logs, "none", "adapter.image_size=null")
    members = [frozen_encoder(cfg) for _ in range(2)]  # two random initialisations
    for member, size in zip(members, [(40, 32), (48, 40)]):
        member.backbone.native_input_size = size
    ensemble = EnsembleEncoder(members, weights=[1.0, 3.0]).eval()
    detector = instantiate(cfg.detector)
    features = AdapterFeatures(cfg, ensemble, adapter_datamodule(cfg, ensemble), detector)
    directory, fused = features.catalogue()
    assert sorted(tuple(d[0]["image"].shape[1:]) for d in features.datasets.values()) == [(40, 32), (48, 40)]
    alone = [AdapterFeatures(cfg, m, adapter_datamodule(cfg, m), detector).catalogue()[1] for m in members]
    expected = np.concatenate([np.sqrt(0.25) * alone[0], np.sqrt(0.75) * alone[1]], axis=1)
    np.testing.assert_allclose(fused, expected, atol=1e-6)
    assert len(manifests(logs)) == 3  # each member's entry, reused by the members alone, and the combined one
    assert load_features(directory)[1] == features.datamodule.catalogue_ids


def test_combining_feature_caches_of_other_items_is_refused(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    directories = []
    for name, ids in [("a", ["x", "y"]), ("b", ["y", "x"])]:
        writer = ShardWriter(tmp_path / name, ids, fingerprint=name)
        writer.add(np.eye(2, dtype=np.float32), np.arange(2))
        writer.flush()
        writer.finalize()
        directories.append(tmp_path / name)
    with pytest.raises(ValueError, match="holds other items"):
        cache.get_or_combine(directories, [0.5, 0.5])
