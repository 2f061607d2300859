"""The JSON of the service's requests and answers (what ``/docs`` shows); docs/serving.md."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_K = 15


class SearchOptions(BaseModel):
    """The options every ``POST /search`` takes."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(DEFAULT_K, ge=1, description="products to return (at most serve.max_k)")
    section: int | None = Field(
        None, description="the photo's section: only products of that section (none: every product)"
    )


class Options(SearchOptions):
    """Options of a photo's ``POST /search``: form fields beside the ``image`` upload, or keys of the JSON
    body."""

    detector: str | None = Field(
        None, description="none | zones | the run's detector (default: the run's; /info lists them)"
    )
    rerank: bool = Field(True, description="apply the run's re-ranking chain (false: raw similarity)")


class BundleQuery(Options):
    """``POST /search`` with ``Content-Type: application/json``: a bundle of the dataset by id."""

    bundle_id: str = Field(description="a bundle_asset_id of bundles_dataset.csv")


class TextQuery(SearchOptions):
    """``POST /search`` with a text (docs/serving.md "Text queries"): JSON ``{"text": ...}`` or a form field
    ``text``; with ``product_id`` (or, in a form, an ``image`` upload) a composed query, "this product,
    <text>". Needs a service with a text model (``/info`` ``text``)."""

    text: str = Field(description="the query text, or what to change in a composed query ('in black')")
    product_id: str | None = Field(
        None, description="compose with this catalogue product (left out of the results)"
    )

    @field_validator("text")
    @classmethod
    def not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("the text is empty or only whitespace")
        return text


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
    embed_text: float = Field(0.0, description="the text tower (text and composed queries)")
    search: float
    rerank: float
    total: float


class SearchAnswer(BaseModel):
    query: str = Field(
        description="the bundle id, 'upload', 'text', or 'composed' (text with a product or photo)"
    )
    bundle_id: str | None
    image_url: str | None = Field(
        description="the bundle's photo, or the composed query's product (null for an upload)"
    )
    text: str | None = Field(None, description="the query text (text and composed queries)")
    product_id: str | None = Field(None, description="the composed query's product")
    fusion: str | None = Field(None, description="a composed query's fusion: arithmetic or head")
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
