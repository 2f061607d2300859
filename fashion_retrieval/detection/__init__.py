"""Garment detection: bundle photo -> garment regions -> crops, with a model-free fallback and a disk cache.

Detectors (``conf/detector/``) follow :class:`fashion_retrieval.detection.types.Detector`: ``yolo``
(:mod:`.yolo`), ``zones`` and ``none`` (:mod:`.zones`), ``truth`` (:mod:`.truth`, the ceiling).
:func:`fashion_retrieval.detection.crops.detect_crops` is what the pipelines call.
"""
