"""Product captions: the optional ``product_captions.csv`` and each product's texts.

``product_captions.csv`` (``product_asset_id,caption``) holds several rows per product, one phrasing each
(the synthetic generator writes it from the article's own attributes; docs/dataset.md). The real challenge
data has no such file: its only text is ``product_description``, the category.

Two calls, one for each need:

- :func:`load_captions`: the file as it is, validated; ``None`` when the dataset has no captions file.
- :func:`load_attributes`: the synthetic data's ``product_attributes.csv`` (one row per product: the
  category's noun, palette colour, basic colour name, pattern word, ``;``-separated details), the truth
  of text queries.
- :func:`product_texts`: every product's texts, the captions where the file gives some and else the
  product's description (lower-cased) as its only text, so a text model reads real and synthetic data alike.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fashion_retrieval.data.catalogue import (
    PRODUCTS_FILE,
    Catalogue,
    CatalogueError,
    check_non_empty,
    check_unique,
    csv_line,
    list_examples,
    load_catalogue,
    read_csv,
)

log = logging.getLogger(__name__)

CAPTIONS_FILE = "product_captions.csv"
CAPTION_COLUMNS = ("product_asset_id", "caption")
# Optional (synthetic only): what each packshot shows, the ground truth of attribute and composed queries.
ATTRIBUTES_FILE = "product_attributes.csv"
ATTRIBUTE_COLUMNS = ("product_asset_id", "category", "colour", "colour_group", "pattern", "details")


def check_known_products(frame: pd.DataFrame, product_ids: Sequence[str], path: Path) -> None:
    """Raise :class:`~fashion_retrieval.data.catalogue.CatalogueError` naming each line of ``frame`` (read
    from ``path``) whose ``product_asset_id`` is not among ``product_ids``."""
    unknown = frame.index[~frame["product_asset_id"].isin(set(product_ids))]
    if len(unknown):
        details = [f"{frame.at[r, 'product_asset_id']!r} (line {csv_line(r)})" for r in unknown]
        raise CatalogueError(
            f"{path}: field product_asset_id: not in {PRODUCTS_FILE}: {list_examples(details)}"
        )


def load_captions(dataset_dir: str | Path, product_ids: Sequence[str]) -> dict[str, list[str]] | None:
    """Captions of ``dataset_dir/product_captions.csv`` by product id (file order within a product), or
    ``None`` when the file is absent.

    ``product_ids``: the catalogue's products; a caption of any other product, an empty cell or a missing
    column raises :class:`~fashion_retrieval.data.catalogue.CatalogueError` naming the file, line and field.
    Products without a caption are absent from the result and their count is logged.
    """
    path = Path(dataset_dir) / CAPTIONS_FILE
    if not path.is_file():
        return None
    frame = read_csv(path, CAPTION_COLUMNS)
    check_non_empty(frame, "product_asset_id", path)
    check_non_empty(frame, "caption", path)
    check_known_products(frame, product_ids, path)
    captions: dict[str, list[str]] = {}
    for product, caption in zip(frame["product_asset_id"], frame["caption"]):
        captions.setdefault(product, []).append(caption)
    missing = [p for p in product_ids if p not in captions]
    if missing:
        log.warning(
            "%s: %d of %d product(s) have no caption: %s",
            path,
            len(missing),
            len(product_ids),
            list_examples(missing),
        )
    return captions


def load_attributes(dataset_dir: str | Path, product_ids: Sequence[str]) -> pd.DataFrame | None:
    """``product_attributes.csv`` of ``dataset_dir`` as a frame indexed by product id in ``product_ids``
    order (columns :data:`ATTRIBUTE_COLUMNS` but the id; ``details`` stays a ``;``-separated string), or
    ``None`` when the file is absent.

    An unknown or repeated product id or an empty field but ``details`` raises
    :class:`~fashion_retrieval.data.catalogue.CatalogueError` naming the file and line; products the file
    does not list are absent from the frame and their count is logged.
    """
    path = Path(dataset_dir) / ATTRIBUTES_FILE
    if not path.is_file():
        return None
    frame = read_csv(path, ATTRIBUTE_COLUMNS)
    for column in ATTRIBUTE_COLUMNS[:-1]:
        check_non_empty(frame, column, path)
    check_unique(frame, "product_asset_id", path)
    check_known_products(frame, product_ids, path)
    frame = frame.set_index("product_asset_id")
    listed = [p for p in product_ids if p in frame.index]
    if len(listed) < len(product_ids):
        missing = [p for p in product_ids if p not in frame.index]
        log.warning(
            "%s: %d of %d product(s) have no attributes: %s",
            path,
            len(missing),
            len(product_ids),
            list_examples(missing),
        )
    return frame.loc[listed]


def product_texts(catalogue: Catalogue) -> dict[str, list[str]]:
    """Every product's texts, in :attr:`Catalogue.product_ids` order: its captions (:func:`load_captions`
    on ``catalogue.root``), else its ``product_description`` lower-cased as its one text (the real data's
    category, e.g. ``"t-shirt"``). A product with neither is absent from the result; how many products fall
    back to their description and how many have no text at all is logged."""
    product_ids = catalogue.product_ids
    captions = load_captions(catalogue.root, product_ids)
    if captions is None:
        log.info("%s: no %s; each product's text is its product_description", catalogue.root, CAPTIONS_FILE)
        captions = {}
    texts: dict[str, list[str]] = {}
    fallback, textless = 0, []
    for product, description in zip(product_ids, catalogue.product_categories):
        if product in captions:
            texts[product] = captions[product]
        elif description.strip():
            texts[product] = [description.strip().lower()]
            fallback += 1
        else:
            textless.append(product)
    if fallback and captions:
        log.info("%s: %d product(s) use their product_description as text", catalogue.root, fallback)
    if textless:
        log.warning(
            "%s: %d product(s) have neither a caption nor a product_description, so no text: %s",
            catalogue.root,
            len(textless),
            list_examples(textless),
        )
    return texts


def load_query_data(dataset_dir: str | Path) -> tuple[Catalogue, dict[str, list[str]], pd.DataFrame]:
    """The catalogue (with ``articles``), captions and attributes that text and composed queries need
    (text-eval, train-fusion); a dataset without one of them raises :class:`CatalogueError` saying how to
    add them."""
    catalogue = load_catalogue(dataset_dir, image_check="none")
    captions = load_captions(dataset_dir, catalogue.product_ids)
    attributes = load_attributes(dataset_dir, catalogue.product_ids)
    if captions is None or attributes is None or catalogue.articles is None:
        raise CatalogueError(
            f"{dataset_dir}: text and composed queries need product_captions.csv, product_attributes.csv and "
            "product_articles.csv (synthetic data of generator 1.4.0; add the text to an older dataset with "
            "`fashion-retrieval generate generate.captions_only=true`, docs/dataset.md)"
        )
    return catalogue, captions, attributes
