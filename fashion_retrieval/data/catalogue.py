"""Reader and validator for the challenge's on-disk format.

A dataset root holds ``product_dataset.csv``, ``bundles_dataset.csv``, ``bundles_product_match_train.csv``,
``bundles_product_match_test.csv`` and ``images/{products,bundles}/{asset_id}.jpg`` (see docs/dataset.md).
Every problem is reported with the file, the CSV line and the field, so a broken download or a hand-edited
file is found at load time rather than in the middle of an epoch.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd

from fashion_retrieval.data.boxes import Box
from fashion_retrieval.io import SAFE_NAME, contained_path

log = logging.getLogger(__name__)

PRODUCTS_FILE = "product_dataset.csv"
BUNDLES_FILE = "bundles_dataset.csv"
TRAIN_MATCHES_FILE = "bundles_product_match_train.csv"
TEST_MATCHES_FILE = "bundles_product_match_test.csv"
TEST_TRUTH_FILE = "bundles_product_match_test_truth.csv"
PRODUCT_ARTICLES_FILE = "product_articles.csv"  # optional (synthetic only): the article of each product
BOXES_FILE = "bundle_garment_boxes.csv"  # optional (synthetic only): each listed product's box in its photo

PRODUCT_COLUMNS = ("product_asset_id", "product_image_url", "product_description")
BUNDLE_COLUMNS = ("bundle_asset_id", "bundle_id_section", "bundle_image_url")
MATCH_COLUMNS = ("bundle_asset_id", "product_asset_id")
ARTICLE_COLUMNS = ("product_asset_id", "article_id")
BOX_COORDINATES = ("x1", "y1", "x2", "y2")  # pixels, x2/y2 exclusive
BOX_COLUMNS = (
    "bundle_asset_id",
    "product_asset_id",
    "product_description",
    *BOX_COORDINATES,
    "visible_fraction",
)
UNKNOWN_SECTION = -1  # a product never seen in a training match

# An Inditex asset's file name starts with its 11-digit code (8-digit article + 3-digit colour), e.g.
# .../04341728814-p/04341728814-p.jpg?ts=1726156162824&w=750, sometimes followed by 3 more digits (a 14-digit
# name). Folder names are hex hashes whose digit runs are no codes, so only the file name is read.
_ARTICLE_CODE = re.compile(r"(?<![0-9])([0-9]{11})(?:[0-9]{3})?(?![0-9])")
CODE_DIGITS = 11
ARTICLE_PREFIX_DIGITS = 8  # colour variants of one article share the code's first 8 digits

MissingImagePolicy = Literal["fail", "skip"]
ImageCheck = Literal["none", "exists", "decode"]


class CatalogueError(ValueError):
    """The dataset on disk does not follow the challenge format; the message says where."""


def csv_line(row_index: int) -> int:
    """CSV line number of a 0-based data row (line 1 is the header)."""
    return row_index + 2


def list_examples(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


def read_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """Read a challenge CSV as strings, check its header; empty cells stay ``""``."""
    if not path.is_file():
        raise CatalogueError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as error:
        raise CatalogueError(
            f"{path}: the file is empty (not even a header line {','.join(columns)}); an interrupted "
            "download or copy? Fetch or regenerate it"
        ) from error
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise CatalogueError(f"{path}: cannot parse CSV: {error}") from error
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise CatalogueError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    frame = frame[list(columns)].copy()
    for column in columns:
        frame[column] = frame[column].str.strip()
    return frame


def check_unique(frame: pd.DataFrame, column: str, path: Path) -> None:
    duplicated = frame[column].duplicated(keep=False)
    if duplicated.any():
        rows = frame.index[duplicated]
        details = [f"{frame.at[r, column]} (line {csv_line(r)})" for r in rows]
        raise CatalogueError(f"{path}: duplicate {column}: {list_examples(details)}")


def check_non_empty(frame: pd.DataFrame, column: str, path: Path) -> None:
    empty = frame.index[frame[column] == ""]
    if len(empty):
        raise CatalogueError(
            f"{path}: empty {column} on line(s) {list_examples([str(csv_line(r)) for r in empty])}"
        )


def check_ids(frame: pd.DataFrame, column: str, path: Path) -> None:
    """Every value of ``column`` is a safe id (:data:`fashion_retrieval.io.SAFE_NAME`; the challenge's are
    ``I_``/``B_`` + 12 hex), since ids become file names; else :class:`CatalogueError` naming the lines."""
    bad = frame.index[~frame[column].str.fullmatch(SAFE_NAME.pattern)]
    if len(bad):
        details = [f"line {csv_line(r)}: {frame.at[r, column]!r}" for r in bad]
        raise CatalogueError(
            f"{path}: field {column}: not a valid id: {list_examples(details)}. Ids are letters, digits, "
            "'_', '-' and '.', starting with a letter or digit, at most 128 characters, like the "
            "challenge's I_3f9a0c27be41 (docs/security.md)"
        )


def resolve_image_path(root: Path, url: str, kind: Literal["products", "bundles"], asset_id: str) -> Path:
    """Map a CSV image URL to a local file.

    Real challenge CSVs hold https URLs with query strings; their images live (once downloaded) at
    ``images/{kind}/{asset_id}.jpg``, which must stay inside that folder (``ValueError`` otherwise; the
    readers check ids first with :func:`check_ids`). A relative path is taken from the dataset root, an
    absolute one as is.
    """
    if urlparse(url).scheme in ("http", "https") or not url:
        return contained_path(root / "images" / kind, f"{asset_id}.jpg")
    path = Path(url)
    return path if path.is_absolute() else root / path


def parse_image_url(url: str) -> tuple[str | None, int | None]:
    """(11-digit article code, ``ts=`` timestamp in milliseconds) of an image URL, ``None`` for each part
    it lacks.

    Only http(s) URLs carry metadata: local paths (old synthetic datasets, generic readers) name files, and a
    file name that happens to hold 11 digits is no article. The code is the first run of exactly 11 digits
    in the file name (the last path component), or the first 11 of a run of exactly 14 (code + 3 digits);
    folders never count (their hex hashes hold digit runs). The timestamp is the integer ``ts`` query
    parameter (a non-integer one counts as absent).
    """
    parsed = urlparse(url.strip())
    if parsed.scheme not in ("http", "https"):
        return None, None
    code = _ARTICLE_CODE.search(PurePosixPath(parsed.path).name)
    ts = parse_qs(parsed.query).get("ts", [""])[0]
    return (code.group(1) if code else None), (int(ts) if ts.isascii() and ts.isdigit() else None)


def url_metadata(urls: Iterable[str]) -> tuple[np.ndarray, list[str | None]]:
    """``(N,)`` float64 timestamps in ms (NaN when absent; exact below 2**53) and ``N`` article codes
    (``None`` when absent) of image URLs (:func:`parse_image_url`)."""
    parsed = [parse_image_url(str(url)) for url in urls]
    timestamps = np.array([np.nan if ts is None else float(ts) for _, ts in parsed], dtype=np.float64)
    return timestamps, [code for code, _ in parsed]


def code_numbers(codes: Iterable[str | None]) -> np.ndarray:
    """``(N,)`` int64 of 11-digit codes, ``-1`` for ``None``; the article is ``code // 1000``."""
    return np.array([-1 if code is None else int(code) for code in codes], dtype=np.int64)


def _log_missing_metadata(frame: pd.DataFrame, column: str, path: Path) -> None:
    """Say how many rows lack a URL timestamp or article code (all of them in old synthetic data)."""
    timestamps, codes = url_metadata(frame[column])
    no_ts, no_code = int(np.isnan(timestamps).sum()), sum(code is None for code in codes)
    if no_ts or no_code:
        log.info(
            "%s: %d of %d row(s) without a ts= timestamp and %d without an 11-digit article code in %s "
            "(priors that need them leave those rows untouched)",
            path,
            no_ts,
            len(frame),
            no_code,
            column,
        )


def image_problem(path: Path, check: ImageCheck, max_pixels: int | None = None) -> str | None:
    """Why the image at ``path`` cannot be used, or ``None``. ``exists``: the file is there; ``decode``: it
    decodes completely, as a loader will read it (:func:`~fashion_retrieval.data.transforms.load_rgb`: a
    truncated JPEG, or more than ``max_pixels`` pixels, is a problem)."""
    if check == "none":
        return None
    if not path.is_file():
        return "missing"
    if check == "decode":
        from fashion_retrieval.data.transforms import ImageReadError, load_rgb

        try:
            load_rgb(str(path), max_pixels)
        except ImageReadError as error:
            return f"unreadable ({error.reason})"
    return None


@dataclass(frozen=True)
class QuerySet:
    """Queries for retrieval: bundle ids, image paths, sections and (when known) truth as catalogue indices.

    ``boxes``: when set, query ``i`` is the region ``boxes[i]`` of its photo (a ground-truth garment; a
    bundle then appears once per garment, with that garment's product as its truth).
    """

    bundle_ids: list[str]
    image_paths: list[str]
    sections: list[int]
    truth: list[list[int]] | None
    boxes: list[Box] | None = None


@dataclass
class Catalogue:
    """A validated dataset: products, bundles, training matches and the test bundles.

    ``products`` columns: product_asset_id, product_image_url, product_description, image_path.
    ``bundles`` columns: bundle_asset_id, bundle_id_section (int), bundle_image_url, image_path.
    ``train_matches`` columns: bundle_asset_id, product_asset_id.
    ``articles``: product id -> article id (colour variants share one), from the optional
    ``product_articles.csv``; ``None`` when the dataset has no such file (the real data).
    ``test_bundle_ids`` lists every test bundle, photo or not (a submission needs them all);
    ``imageless_bundles``: section of each bundle dropped for its photo (``missing_images='skip'``);
    ``section_matches``: the training matches as read, before any image was dropped (``None``: the same as
    ``train_matches``), so what is known of sections never depends on images.
    """

    root: Path
    products: pd.DataFrame
    bundles: pd.DataFrame
    train_matches: pd.DataFrame
    test_bundle_ids: list[str]
    skipped: dict[str, int] = field(default_factory=dict)
    articles: dict[str, str] | None = None
    imageless_bundles: dict[str, int] = field(default_factory=dict)
    section_matches: pd.DataFrame | None = None

    @property
    def train_bundle_ids(self) -> list[str]:
        return list(dict.fromkeys(self.train_matches["bundle_asset_id"]))

    @property
    def searchable_test_bundle_ids(self) -> list[str]:
        """The test bundles that have a photo (the others get products without a search)."""
        return [b for b in self.test_bundle_ids if b not in self.imageless_bundles]

    def bundle_sections(self) -> dict[str, int]:
        """Section of every bundle, including those dropped for their photo."""
        sections = dict(zip(self.bundles["bundle_asset_id"], self.bundles["bundle_id_section"]))
        return {**sections, **self.imageless_bundles}

    def _all_matches(self) -> pd.DataFrame:
        return self.train_matches if self.section_matches is None else self.section_matches

    def product_sections(
        self, bundle_ids: Iterable[str] | None = None, *, exclude: Iterable[str] = ()
    ) -> dict[str, int]:
        """Section of every product seen in training matches (the product CSV has no section column),
        including the matches of bundles dropped for their photo.

        ``bundle_ids`` restricts the matches used and ``exclude`` leaves bundles out, so validation can
        learn sections from every training bundle but its own.
        """
        matches = self._all_matches()
        if bundle_ids is not None:
            matches = matches[matches["bundle_asset_id"].isin(set(bundle_ids))]
        matches = matches[~matches["bundle_asset_id"].isin(set(exclude))]
        sections = matches["bundle_asset_id"].map(self.bundle_sections())
        return dict(zip(matches["product_asset_id"], sections.astype(int)))

    def product_match_counts(self) -> np.ndarray:
        """``(P,)`` int64 training matches of each product (catalogue order), photos or not."""
        counts = self._all_matches()["product_asset_id"].value_counts()
        return counts.reindex(self.products["product_asset_id"], fill_value=0).to_numpy(np.int64)

    def products_of(self, bundle_ids: Iterable[str] | None = None) -> dict[str, list[str]]:
        """Ground-truth products of each training bundle, in file order."""
        matches = self.train_matches
        if bundle_ids is not None:
            matches = matches[matches["bundle_asset_id"].isin(set(bundle_ids))]
        grouped = matches.groupby("bundle_asset_id", sort=False)["product_asset_id"]
        return {bundle: list(products) for bundle, products in grouped}

    def product_timestamps(self) -> np.ndarray:
        """``(P,)`` float64 image timestamps of the products in ms (catalogue order), NaN where the URL has
        none (old synthetic data, local paths, catalogues without URLs)."""
        return self._url_metadata(self.products, "product_image_url", None)[0]

    def product_codes(self) -> list[str | None]:
        """``P`` 11-digit article codes of the products (catalogue order), ``None`` where the URL has none."""
        return self._url_metadata(self.products, "product_image_url", None)[1]

    def bundle_timestamps(self, bundle_ids: Sequence[str] | None = None) -> np.ndarray:
        """``(B,)`` float64 image timestamps in ms of ``bundle_ids`` (default: all bundles, file order), NaN
        where the URL has none."""
        return self._url_metadata(self.bundles, "bundle_image_url", bundle_ids)[0]

    def bundle_codes(self, bundle_ids: Sequence[str] | None = None) -> list[str | None]:
        """``B`` 11-digit codes of ``bundle_ids``' URLs (its lead product's in Inditex data), ``None`` where
        absent."""
        return self._url_metadata(self.bundles, "bundle_image_url", bundle_ids)[1]

    @staticmethod
    def _url_metadata(
        frame: pd.DataFrame, column: str, ids: Sequence[str] | None
    ) -> tuple[np.ndarray, list[str | None]]:
        if ids is not None:
            frame = frame.set_index(frame.columns[0]).loc[list(ids)]
        if column not in frame.columns:  # readers of other datasets carry no URLs
            return np.full(len(frame), np.nan), [None] * len(frame)
        return url_metadata(frame[column])

    def product_index(self) -> dict[str, int]:
        return {product: i for i, product in enumerate(self.products["product_asset_id"])}

    @property
    def product_ids(self) -> list[str]:
        """``P`` product ids in catalogue order: the order of every ``(P,)`` array and of the index."""
        return list(self.products["product_asset_id"])

    @property
    def product_categories(self) -> list[str]:
        """``P`` category (``product_description``) of each product, in :attr:`product_ids` order."""
        return list(self.products["product_description"])

    @property
    def bundle_ids(self) -> list[str]:
        """Every bundle with a photo, in file order (the order of bundle labels)."""
        return list(self.bundles["bundle_asset_id"])

    @property
    def product_paths(self) -> list[str]:
        """``P`` product image files, in :attr:`product_ids` order."""
        return [str(path) for path in self.products["image_path"]]

    def bundle_paths(self) -> dict[str, str]:
        """Photo file of every bundle that has one (bundle id -> path)."""
        return {
            bundle: str(path)
            for bundle, path in zip(self.bundles["bundle_asset_id"], self.bundles["image_path"])
        }

    def section_array(self, *, exclude: Iterable[str] = ()) -> np.ndarray:
        """``(P,)`` int64 section of every product (catalogue order), ``UNKNOWN_SECTION`` where no training
        match tells it; the matches of the ``exclude`` bundles are not used (validation must not learn its
        own products' sections)."""
        sections = self.product_sections(exclude=exclude)
        return np.array([sections.get(p, UNKNOWN_SECTION) for p in self.product_ids], dtype=np.int64)

    def bundle_queries(self, bundle_ids: Sequence[str], *, with_truth: bool) -> QuerySet:
        """One query per bundle photo of ``bundle_ids`` (in order), with its products as truth (catalogue
        indices) when ``with_truth`` (training matches: validation bundles; test truth stays hidden)."""
        rows = self.bundles.set_index("bundle_asset_id").loc[list(bundle_ids)]
        truth = None
        if with_truth:
            index = self.product_index()
            products_of = self.products_of(bundle_ids)
            truth = [[index[p] for p in products_of[b]] for b in bundle_ids]
        return QuerySet(
            bundle_ids=list(bundle_ids),
            image_paths=[str(p) for p in rows["image_path"]],
            sections=[int(s) for s in rows["bundle_id_section"]],
            truth=truth,
        )

    def garment_queries(self, garments: Sequence[tuple[str, str, Box]]) -> QuerySet:
        """One query per ``(bundle id, product id, box)``: that region of the bundle's photo, its product as
        the truth."""
        paths = self.bundle_paths()
        sections = self.bundle_sections()
        index = self.product_index()
        return QuerySet(
            bundle_ids=[bundle for bundle, _, _ in garments],
            image_paths=[paths[bundle] for bundle, _, _ in garments],
            sections=[int(sections[bundle]) for bundle, _, _ in garments],
            truth=[[index[product]] for _, product, _ in garments],
            boxes=[box for _, _, box in garments],
        )

    def article_variants(self) -> dict[str, list[str]]:
        """Other colour variants of each product's article (catalogue order), for products that have any;
        ``{}`` without an articles file."""
        if not self.articles:
            return {}
        members: dict[str, list[str]] = {}
        for product in self.products["product_asset_id"]:
            article = self.articles.get(product)
            if article is not None:
                members.setdefault(article, []).append(product)
        return {
            product: [other for other in group if other != product]
            for group in members.values()
            if len(group) > 1
            for product in group
        }


def load_catalogue(
    root: str | Path,
    *,
    missing_images: MissingImagePolicy = "fail",
    image_check: ImageCheck = "exists",
    max_image_pixels: int | None = None,
) -> Catalogue:
    """Read and validate a dataset root in the challenge format.

    ``missing_images='skip'`` drops products and bundles whose image is missing or unreadable (and the
    matches naming them), logging each count; ``'fail'`` raises on the first report. ``image_check``:
    see :func:`image_problem` (``max_image_pixels`` with ``decode``).
    """
    root = Path(root)
    if not root.is_dir():
        raise CatalogueError(f"{root}: dataset directory not found (run `fashion-retrieval generate` first?)")
    products_path, bundles_path = root / PRODUCTS_FILE, root / BUNDLES_FILE
    train_path, test_path = root / TRAIN_MATCHES_FILE, root / TEST_MATCHES_FILE

    products = read_csv(products_path, PRODUCT_COLUMNS)
    check_non_empty(products, "product_asset_id", products_path)
    check_ids(products, "product_asset_id", products_path)
    check_unique(products, "product_asset_id", products_path)
    bundles = read_csv(bundles_path, BUNDLE_COLUMNS)
    check_non_empty(bundles, "bundle_asset_id", bundles_path)
    check_ids(bundles, "bundle_asset_id", bundles_path)
    check_unique(bundles, "bundle_asset_id", bundles_path)
    sections = pd.to_numeric(bundles["bundle_id_section"], errors="coerce")
    bad = bundles.index[sections.isna() | (sections != sections.round())]
    if len(bad):
        details = [f"line {csv_line(r)}: {bundles.at[r, 'bundle_id_section']!r}" for r in bad]
        raise CatalogueError(
            f"{bundles_path}: bundle_id_section must be an integer: {list_examples(details)}"
        )
    bundles["bundle_id_section"] = sections.astype(int)

    train = read_csv(train_path, MATCH_COLUMNS)
    test = read_csv(test_path, MATCH_COLUMNS)
    _check_matches(train, train_path, products, bundles, require_product=True)
    _check_matches(test, test_path, products, bundles, require_product=False)
    check_unique(test, "bundle_asset_id", test_path)
    duplicated_pairs = train.duplicated(keep="first")
    if duplicated_pairs.any():
        details = [f"line {csv_line(r)}" for r in train.index[duplicated_pairs]]
        raise CatalogueError(f"{train_path}: duplicate (bundle, product) rows: {list_examples(details)}")
    overlap = sorted(set(train["bundle_asset_id"]) & set(test["bundle_asset_id"]))
    if overlap:
        raise CatalogueError(f"{test_path}: bundles also in {TRAIN_MATCHES_FILE}: {list_examples(overlap)}")
    _check_sections(train, bundles, train_path)
    _log_missing_metadata(products, "product_image_url", products_path)
    _log_missing_metadata(bundles, "bundle_image_url", bundles_path)
    articles = _read_articles(root / PRODUCT_ARTICLES_FILE, products)

    products["image_path"] = [
        resolve_image_path(root, url, "products", pid)
        for pid, url in zip(products["product_asset_id"], products["product_image_url"])
    ]
    bundles["image_path"] = [
        resolve_image_path(root, url, "bundles", bid)
        for bid, url in zip(bundles["bundle_asset_id"], bundles["bundle_image_url"])
    ]
    skipped: dict[str, int] = {}
    checks = (image_check, missing_images, max_image_pixels)
    all_bundles, section_matches = bundles, train
    products, dropped_products = _apply_image_policy(products, products_path, *checks)
    bundles, dropped_bundles = _apply_image_policy(bundles, bundles_path, *checks)
    imageless = all_bundles[all_bundles["bundle_asset_id"].isin(dropped_bundles)]
    imageless_bundles = dict(zip(imageless["bundle_asset_id"], imageless["bundle_id_section"].astype(int)))
    if dropped_products or dropped_bundles:
        keep = ~train["product_asset_id"].isin(dropped_products) & ~train["bundle_asset_id"].isin(
            dropped_bundles
        )
        skipped = {
            "products": len(dropped_products),
            "bundles": len(dropped_bundles),
            "train_matches": int((~keep).sum()),
            "test_bundles": int(test["bundle_asset_id"].isin(dropped_bundles).sum()),
        }
        train = train[keep]
        log.warning("%s: skipped for missing/unreadable images: %s", root, skipped)
        if skipped["test_bundles"]:
            log.warning(
                "%s: %d test bundle(s) without a photo stay in the submission with their section's most "
                "popular products (no search): %s",
                root,
                skipped["test_bundles"],
                list_examples(sorted(set(test["bundle_asset_id"]) & dropped_bundles)),
            )

    return Catalogue(
        root=root,
        products=products.reset_index(drop=True),
        bundles=bundles.reset_index(drop=True),
        train_matches=train.reset_index(drop=True),
        test_bundle_ids=list(test["bundle_asset_id"]),
        skipped=skipped,
        imageless_bundles=imageless_bundles,
        section_matches=section_matches.reset_index(drop=True),
        articles=(
            None
            if articles is None
            else {p: articles[p] for p in products["product_asset_id"] if p in articles}
        ),
    )


def _read_articles(path: Path, products: pd.DataFrame) -> dict[str, str] | None:
    """product id -> article id from the optional articles file; ``None`` when it is absent. Products it
    does not list are articles of their own (no variants)."""
    if not path.is_file():
        return None
    frame = read_csv(path, ARTICLE_COLUMNS)
    check_non_empty(frame, "product_asset_id", path)
    check_non_empty(frame, "article_id", path)
    check_unique(frame, "product_asset_id", path)
    unknown = frame.index[~frame["product_asset_id"].isin(set(products["product_asset_id"]))]
    if len(unknown):
        details = [f"{frame.at[r, 'product_asset_id']!r} (line {csv_line(r)})" for r in unknown]
        raise CatalogueError(f"{path}: product_asset_id not in {PRODUCTS_FILE}: {list_examples(details)}")
    return dict(zip(frame["product_asset_id"], frame["article_id"]))


def _check_matches(
    matches: pd.DataFrame, path: Path, products: pd.DataFrame, bundles: pd.DataFrame, *, require_product: bool
) -> None:
    unknown_bundles = matches.index[~matches["bundle_asset_id"].isin(set(bundles["bundle_asset_id"]))]
    if len(unknown_bundles):
        details = [f"{matches.at[r, 'bundle_asset_id']!r} (line {csv_line(r)})" for r in unknown_bundles]
        raise CatalogueError(f"{path}: bundle_asset_id not in {BUNDLES_FILE}: {list_examples(details)}")
    if not require_product:
        return
    check_non_empty(matches, "product_asset_id", path)
    unknown_products = matches.index[~matches["product_asset_id"].isin(set(products["product_asset_id"]))]
    if len(unknown_products):
        details = [f"{matches.at[r, 'product_asset_id']!r} (line {csv_line(r)})" for r in unknown_products]
        raise CatalogueError(f"{path}: product_asset_id not in {PRODUCTS_FILE}: {list_examples(details)}")


def _check_sections(train: pd.DataFrame, bundles: pd.DataFrame, path: Path) -> None:
    """Products never cross sections: a product matched to bundles of two sections is an error."""
    section = train["bundle_asset_id"].map(
        dict(zip(bundles["bundle_asset_id"], bundles["bundle_id_section"]))
    )
    per_product = pd.DataFrame({"product": train["product_asset_id"], "section": section})
    counts = per_product.groupby("product")["section"].nunique()
    crossing = counts.index[counts > 1].tolist()
    if crossing:
        details = []
        for product in crossing[:5]:
            rows = per_product[per_product["product"] == product]
            # Every section the product is matched in, each with its lines: which side is wrong is the
            # reader's call.
            seen = [
                f"section {section} (line(s) {list_examples([str(csv_line(r)) for r in group.index], 3)})"
                for section, group in rows.groupby("section", sort=True)
            ]
            details.append(f"{product}: {', '.join(seen)}")
        raise CatalogueError(
            f"{path}: {len(crossing)} product(s) matched to bundles of different sections: "
            + "; ".join(details)
        )


def _apply_image_policy(
    frame: pd.DataFrame, path: Path, check: ImageCheck, policy: MissingImagePolicy, max_pixels: int | None
) -> tuple[pd.DataFrame, set[str]]:
    id_column = frame.columns[0]
    problems = [(i, image_problem(p, check, max_pixels)) for i, p in enumerate(frame["image_path"])]
    bad = [(i, problem) for i, problem in problems if problem is not None]
    if not bad:
        return frame, set()
    details = [f"{frame.iat[i, 0]} -> {frame.at[i, 'image_path']} {problem}" for i, problem in bad]
    if policy == "fail":
        raise CatalogueError(
            f"{path}: {len(bad)} image(s) missing or unreadable: {list_examples(details, 3)}. "
            "Set data.missing_images=skip to drop them (the count is logged)."
        )
    dropped = {frame.iat[i, 0] for i, _ in bad}
    log.warning(
        "%s: dropping %d row(s) with missing or unreadable images: %s",
        path,
        len(bad),
        list_examples(details, 3),
    )
    return frame[~frame[id_column].isin(dropped)], dropped


def read_garment_boxes(data_dir: str | Path) -> pd.DataFrame:
    """``bundle_garment_boxes.csv`` of ``data_dir`` with integer ``x1, y1, x2, y2`` columns.

    Raises :class:`CatalogueError` naming the file, line and field of a non-integer coordinate or an
    empty box, and a clear message when the file is missing (real data ships none).
    """
    path = Path(data_dir) / BOXES_FILE
    if not path.is_file():
        raise CatalogueError(
            f"{path}: file not found. Ground-truth garment boxes exist only in synthetic datasets "
            "(`fashion-retrieval generate`); real challenge data has none, so use detector=yolo or zones."
        )
    frame = read_csv(path, BOX_COLUMNS)  # data row i is line i + 2 of the file (line 1: the header)
    for column in BOX_COORDINATES:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = frame.index[values.isna() | (values != values.round())]
        if len(bad):
            row = bad[0]
            value = frame.at[row, column]
            raise CatalogueError(
                f"{path}: line {row + 2}: field {column}: expected an integer pixel, got {value!r}"
            )
        frame[column] = values.astype(int)
    empty = frame.index[(frame["x2"] <= frame["x1"]) | (frame["y2"] <= frame["y1"])]
    if len(empty):
        row = empty[0]
        box = [int(frame.at[row, c]) for c in BOX_COORDINATES]
        raise CatalogueError(
            f"{path}: line {row + 2}: empty box x1, y1, x2, y2 = {box} (need x1 < x2, y1 < y2)"
        )
    return frame


def split_bundles(bundle_ids: Sequence[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Deterministic train/validation split of training bundles (the challenge has no validation file)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    ordered = sorted(bundle_ids)
    permutation = np.random.default_rng(seed).permutation(len(ordered))
    num_val = round(val_fraction * len(ordered))
    val = sorted(ordered[i] for i in permutation[:num_val])
    train = sorted(ordered[i] for i in permutation[num_val:])
    return train, val
