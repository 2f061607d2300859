"""The cache key changes exactly when the features would: weights, image size, crops, ids, precision."""

from __future__ import annotations

import copy

import torch
from feature_data import flat_encoder

from fashion_retrieval.data.datasets import ImageDataset
from fashion_retrieval.data.transforms import eval_transform
from fashion_retrieval.detection.fingerprint import settings_digest
from fashion_retrieval.features import FeatureCache, describe_dataset, feature_settings, module_digest


def key(encoder, dataset, ids, cache=None, **kwargs) -> str:
    precision = (cache or FeatureCache("unused")).precision
    return settings_digest(
        feature_settings(encoder, ids, describe_dataset(dataset), precision=precision, **kwargs)
    )


def test_equal_inputs_give_equal_keys(dataset, ids) -> None:
    encoder = flat_encoder()
    same_weights = copy.deepcopy(encoder)
    rebuilt = ImageDataset(list(dataset.paths), eval_transform((16, 16)))
    assert key(encoder, dataset, ids) == key(same_weights, rebuilt, list(ids))
    # The loader and shard settings do not change a feature.
    assert key(encoder, dataset, ids) == key(
        encoder, dataset, ids, FeatureCache("x", 7, 3, 2, {"devices": 2})
    )


def test_weights_change_the_key_and_a_head_only_the_embedding_key(dataset, ids) -> None:
    encoder, other = flat_encoder(), flat_encoder()
    with torch.no_grad():
        other.head.net[1].weight.add_(0.01)  # the projection head only
    assert module_digest(encoder) != module_digest(other)
    assert key(encoder, dataset, ids) != key(other, dataset, ids)
    assert key(encoder, dataset, ids, method="backbone_features") == key(
        other, dataset, ids, method="backbone_features"
    )
    with torch.no_grad():
        other.backbone.linear.bias.add_(0.01)
    assert key(encoder, dataset, ids, method="backbone_features") != key(
        other, dataset, ids, method="backbone_features"
    )
    assert key(encoder, dataset, ids) != key(encoder, dataset, ids, method="backbone_features")
    assert key(encoder, dataset, ids) != key(encoder, dataset, ids, views=["flip"])


def test_preprocessing_crops_ids_and_precision_change_the_key(dataset, ids) -> None:
    encoder = flat_encoder()
    base = key(encoder, dataset, ids)
    resized = ImageDataset(list(dataset.paths), eval_transform((16, 12)))
    cropped = ImageDataset(list(dataset.paths), eval_transform((16, 16)), crop=(0.1, 0.0, 0.9, 1.0))
    boxes = [(0, 0, 10, 10)] * len(ids)
    boxed = ImageDataset(list(dataset.paths), eval_transform((16, 16)), boxes=boxes)
    moved = ImageDataset(list(dataset.paths), eval_transform((16, 16)), boxes=[(1, 0, 10, 10)] * len(ids))
    detector = {"detector": "zones-abc", "crops": {"min_score": 0.25, "padding": 0.05}}
    other_detector = {"detector": "zones-abc", "crops": {"min_score": 0.5, "padding": 0.05}}
    fp16 = FeatureCache("unused", trainer_options={"precision": "bf16-mixed"})
    keys = [
        base,
        key(encoder, resized, ids),
        key(encoder, cropped, ids),
        key(encoder, boxed, ids),
        key(encoder, moved, ids),
        key(encoder, dataset, ids, crops=detector),
        key(encoder, dataset, ids, crops=other_detector),
        key(encoder, dataset, [*ids[:-1], "another"]),
        key(encoder, dataset, ids[::-1]),
        key(encoder, dataset, ids, fp16),
    ]
    assert len(set(keys)) == len(keys)


def test_integer_and_float_boxes_of_one_crop_share_a_key(dataset, ids) -> None:
    """Fresh detections may hold ints where the detection cache returns floats: the same crop, one key."""
    encoder = flat_encoder()
    ints = ImageDataset(list(dataset.paths), eval_transform((16, 16)), boxes=[(0, 0, 10, 10)] * len(ids))
    floats = ImageDataset(
        list(dataset.paths), eval_transform((16, 16)), boxes=[(0.0, 0.0, 10.0, 10.0)] * len(ids)
    )
    assert key(encoder, ints, ids) == key(encoder, floats, ids)
