"""The JSON of the service's requests and answers (what ``/docs`` shows); docs/serving.md."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_K = 15


class Options(BaseModel):
    """Options of ``POST /search``: form fields beside the ``image`` upload, or keys of the JSON body."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(DEFAULT_K, ge=1, description="products to return (at most serve.max_k)")
    section: int | None = Field(
        None, description="the photo's section: only products of that section (none: every product)"
    )
    detector: str | None = Field(
        None, description="none | zones | the run's detector (default: the run's; /info lists them)"
    )
    rerank: bool = Field(True, description="apply the run's re-ranking chain (false: raw similarity)")


class BundleQuery(Options):
    """``POST /search`` with ``Content-Type: application/json``: a bundle of the dataset by id."""

    bundle_id: str = Field(description="a bundle_asset_id of bundles_dataset.csv")


class CropOut(BaseModel):
    box: list[float] | None = Field(
        description="[x1, y1, x2, y2] in the photo's pixels; null: the whole photo"
    )
    label: str = Field(description="the detector's garment group or zone; 'whole' for the whole photo")
    score: float = Field(description="the detector's confidence")


class ProductOut(BaseModel):
    product_asset_id: str
    category: str
    section: int = Field(description="-1: never seen in a training match")
    image_url: str


class RankedProductOut(ProductOut):
    score: float | None = Field(description="similarity (re-ranked when a chain runs); null: a filled slot")
    crop: CropOut | None = Field(description="the crop whose list found the product")
    hit: bool | None = Field(description="in the bundle's ground truth (null: no truth known)")


class Timings(BaseModel):
    decode: float
    detect: float
    embed: float
    search: float
    rerank: float
    total: float


class SearchAnswer(BaseModel):
    query: str = Field(description="the bundle id, or 'upload'")
    bundle_id: str | None
    image_url: str | None = Field(description="the bundle's photo (null for an upload)")
    k: int
    section: int | None
    detector: str
    rerank: bool
    products: list[RankedProductOut] = Field(description="best first")
    crops: list[CropOut] = Field(description="the regions of the photo searched")
    truth: list[str] | None = Field(description="the bundle's ground-truth products, when known")
    timings_ms: Timings = Field(description="milliseconds per stage of the search (server side)")


class RandomBundle(BaseModel):
    bundle_id: str
    split: str


class Health(BaseModel):
    status: str


class ErrorOut(BaseModel):
    """Every refused request: a 4xx status and this body."""

    error: str = Field(description="what is wrong, naming the field, id or limit")
