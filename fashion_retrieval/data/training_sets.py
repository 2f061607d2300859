"""The training items of challenge-format catalogues, and further directories whose training bundles join
training (``data.extra_training_sets``).

A training set is the primary directory's training bundles (validation, the catalogue searched at
validation and everything downstream stay the primary directory's) followed by the training bundles of
each extra set, all of their matches: an extra set has no validation split of its own. Bundle and product
labels are integers whose ranges never overlap between sets (each set's labels start after the previous
set's last bundle / product), so two sets that share an id string never share a label: a shared id is
two different products. Where an id string is needed (the feature cache's row names), an extra set's
ids are namespaced as ``<name>/<id>``; a catalogue id never holds a ``/`` (``SAFE_NAME``), so a
namespaced id never equals a primary one, and it never becomes a path.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fashion_retrieval.data.catalogue import Catalogue
from fashion_retrieval.data.datasets import TrainingBundle
from fashion_retrieval.io import is_safe_name

log = logging.getLogger(__name__)

OPTION = "data.extra_training_sets"


@dataclass(frozen=True)
class ExtraTrainingSet:
    """A further challenge-format directory: its training bundles (the first ``max_bundles``, or all) and
    their products join training under the namespace ``name``."""

    name: str
    data_dir: Path
    max_bundles: int | None = None


def parse_extra_training_sets(entries: Sequence[Mapping[str, Any]] | None) -> tuple[ExtraTrainingSet, ...]:
    """``data.extra_training_sets`` (plain dicts with ``name``, ``data_dir``, optional ``max_bundles``) ->
    sets, or ``ValueError`` naming the entry and the field (unknown or missing key, a name that is not
    a safe id, a name used twice)."""
    sets: list[ExtraTrainingSet] = []
    fields = {"name", "data_dir", "max_bundles"}
    for i, entry in enumerate(entries or ()):
        where = f"{OPTION}[{i}]"
        if not isinstance(entry, Mapping):
            raise TypeError(f"{where}: expected {{name: ..., data_dir: ...}}, got {entry!r}")
        unknown = sorted(set(entry) - fields)
        missing = sorted({"name", "data_dir"} - set(entry))
        if unknown or missing:
            problems = [
                f"{kind} key(s) {keys}" for kind, keys in (("unknown", unknown), ("missing", missing)) if keys
            ]
            raise ValueError(f"{where}: {', '.join(problems)}; the keys: {sorted(fields)}")
        name = str(entry["name"])
        if not is_safe_name(name):
            raise ValueError(
                f"{where}.name={name!r}: letters, digits, '_', '-' and '.', starting with a letter or digit "
                "(it namespaces the set's ids)"
            )
        if any(s.name == name for s in sets):
            raise ValueError(f"{where}.name={name!r}: used by another extra training set")
        limit = entry.get("max_bundles")
        if limit is not None and int(limit) < 1:
            raise ValueError(f"{where}.max_bundles={limit}: a positive number or null (all)")
        limit = None if limit is None else int(limit)
        sets.append(ExtraTrainingSet(name, Path(str(entry["data_dir"])), limit))
    return tuple(sets)


def reject_extra_training_sets(entries: Sequence[Any] | None, what: str) -> None:
    """``ValueError`` naming the option when ``entries`` is not empty: ``what`` cannot use extra sets."""
    if entries:
        raise ValueError(
            f"{OPTION} is not supported with {what}, which reads the primary data.data_dir only: "
            f"set {OPTION}=[] or drop {what}"
        )


def catalogue_training_bundles(
    catalogue: Catalogue,
    bundle_ids: Sequence[str],
    *,
    mask_articles: bool = False,
    bundle_offset: int = 0,
    product_offset: int = 0,
) -> list[TrainingBundle]:
    """One item per training bundle of ``bundle_ids`` (in match-file order) with its products.

    Labels: ``bundle_offset`` + the bundle's row in :attr:`Catalogue.bundle_ids`, ``product_offset`` + the
    product's row in :attr:`Catalogue.product_ids`. ``mask_articles``: the other colour variants of a
    bundle's articles are its ``excluded_labels`` (none without the catalogue's articles file).
    """
    bundle_label = {b: bundle_offset + i for i, b in enumerate(catalogue.bundle_ids)}
    product_label = {p: product_offset + i for p, i in catalogue.product_index().items()}
    bundle_paths = catalogue.bundle_paths()
    product_paths = dict(zip(catalogue.product_ids, catalogue.product_paths))
    sections = catalogue.bundle_sections()
    variants = catalogue.article_variants() if mask_articles else {}
    bundles = []
    for b, products in catalogue.products_of(bundle_ids).items():
        own = set(products)
        excluded = dict.fromkeys(v for p in products for v in variants.get(p, ()) if v not in own)
        bundles.append(
            TrainingBundle(
                bundle_path=bundle_paths[b],
                product_paths=tuple(product_paths[p] for p in products),
                bundle_label=bundle_label[b],
                product_labels=tuple(product_label[p] for p in products),
                section=int(sections[b]),
                excluded_labels=tuple(product_label[v] for v in excluded),
            )
        )
    return bundles


@dataclass(frozen=True)
class LabelSpace:
    """The bundles and products of every set of a mixed training set, in label order (primary first).

    ``bundle_ids (B,)`` and ``product_ids (G,)``: ids by label, an extra set's namespaced ``<name>/<id>``;
    ``product_categories (G,)``, ``product_paths (G,)``; ``product_sections (G,)`` int, each set's own
    (the primary's without its validation matches).
    """

    bundle_ids: tuple[str, ...]
    product_ids: tuple[str, ...]
    product_categories: tuple[str, ...]
    product_paths: tuple[str, ...]
    product_sections: np.ndarray


def mixed_label_space(
    primary: Catalogue,
    primary_sections: np.ndarray,
    extras: Sequence[tuple[str, Catalogue]],
) -> LabelSpace:
    """Labels of ``primary`` (its :meth:`Catalogue.section_array` as ``primary_sections``) then of each
    ``(name, catalogue)`` of ``extras`` (all their matches give sections), as
    :func:`catalogue_training_bundles` numbers them with :func:`label_offsets`."""
    bundle_ids = list(primary.bundle_ids)
    product_ids = list(primary.product_ids)
    categories = list(primary.product_categories)
    paths = list(primary.product_paths)
    sections = [primary_sections]
    for name, catalogue in extras:
        bundle_ids += [f"{name}/{b}" for b in catalogue.bundle_ids]
        product_ids += [f"{name}/{p}" for p in catalogue.product_ids]
        categories += catalogue.product_categories
        paths += catalogue.product_paths
        sections.append(catalogue.section_array())
    return LabelSpace(
        tuple(bundle_ids), tuple(product_ids), tuple(categories), tuple(paths), np.concatenate(sections)
    )


def label_offsets(primary: Catalogue, extras: Sequence[Catalogue]) -> list[tuple[int, int]]:
    """``(bundle offset, product offset)`` of each extra catalogue: after the primary's and the previous
    extras' labels."""
    offsets = []
    bundles, products = len(primary.bundle_ids), len(primary.product_ids)
    for catalogue in extras:
        offsets.append((bundles, products))
        bundles += len(catalogue.bundle_ids)
        products += len(catalogue.product_ids)
    return offsets
