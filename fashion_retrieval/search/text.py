"""Text and composed queries against a ``train-text`` run (docs/text.md, docs/serving.md "Text queries").

A :class:`TextSearch` is a run's dual encoder (``models/dual_encoder.py`` ``load_dual_encoder`` of its best
checkpoint) and the catalogue embeddings its image tower exported at that epoch
(``index/catalogue_embeddings.npz``), searched by exact cosine (a flat :class:`EmbeddingIndex`)::

    text = TextSearch.from_run_dir("outputs/text_quickstart/<run>")
    query = text.query("red striped shirt")                               # (D,) the text alone
    query = text.query("in black", text.product_embedding("I_29171a65e9d6"))  # "this product, in black"
    ranked = text.search(query, k=10, exclude="I_29171a65e9d6")

A composed query fuses the product's (or photo's) image embedding with the text's: by embedding arithmetic,
``image + text_weight * text`` normalised (:func:`~fashion_retrieval.models.fusion.composed_embeddings`,
as text-eval's), or by the run's trained fusion head (``train-fusion``,
:func:`~fashion_retrieval.models.fusion.load_fusion_head`; ``fusion``, below). ``search-text`` and
``serve`` both search through this class.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from fashion_retrieval.data.transforms import apply, eval_transform
from fashion_retrieval.index.eligibility import UNKNOWN_SECTION, Eligibility, search_eligible
from fashion_retrieval.index.embeddings import load_embeddings
from fashion_retrieval.index.export import EMBEDDINGS_FILE
from fashion_retrieval.index.faiss_index import EmbeddingIndex
from fashion_retrieval.models.dual_encoder import DualEncoder, load_dual_encoder
from fashion_retrieval.models.fusion import composed_embeddings, load_fusion_head

# ``(N, D)`` image and ``(N, D)`` text embeddings -> ``(N, D)`` L2-normalised composed queries.
FusionHead = Callable[[np.ndarray, np.ndarray], np.ndarray]


FUSION_CHOICES = ("auto", "head", "arithmetic")


def fusion_function(run_dir: Path, fusion: str) -> FusionHead | None:
    """The composed-query function of ``fusion`` for a train-text run: its trained head's ``fuse``
    (``head``, or ``auto`` when ``<run>/fusion/`` has one), else ``None`` (arithmetic). ``head`` without a
    trained head raises FileNotFoundError naming the command that trains one."""
    if fusion not in FUSION_CHOICES:
        raise ValueError(f"fusion={fusion!r}: choose one of {', '.join(FUSION_CHOICES)}")
    if fusion == "arithmetic":
        return None
    head = load_fusion_head(run_dir)
    if head is None and fusion == "head":
        raise FileNotFoundError(
            f"{run_dir}: no fusion head (fusion=head); train one with "
            f"`fashion-retrieval train-fusion fusion.run_dir={run_dir}`, or use fusion=arithmetic"
        )
    return None if head is None else head.fuse


class TextSearch:
    """A dual encoder and the ``(G, D)`` catalogue ``embeddings`` of its image tower (rows: ``ids``).

    ``text_weight``: the text's weight in embedding arithmetic. ``fusion_head``: composes queries in its
    place when given (a trained :class:`~fashion_retrieval.models.fusion.FusionHead`'s ``fuse``).
    ``sections``:
    ``(G,)`` int each product's section (``UNKNOWN_SECTION``: never seen in a training match, eligible for
    every section; default all unknown), for the ``section`` option of :meth:`search`.
    """

    def __init__(
        self,
        model: DualEncoder,
        embeddings: np.ndarray,
        ids: list[str],
        source: Path,
        text_weight: float = 1.0,
        fusion_head: FusionHead | None = None,
    ) -> None:
        self.model, self.source = model, source
        self.text_weight, self.fusion_head = float(text_weight), fusion_head
        self.index = EmbeddingIndex(embeddings, ids)
        self.embeddings = np.asarray(embeddings, np.float32)
        self.ids = list(ids)
        self.rows = {product: row for row, product in enumerate(ids)}
        self.sections = np.full(len(ids), UNKNOWN_SECTION, dtype=np.int64)

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, text_weight: float = 1.0, fusion: str = "auto") -> TextSearch:
        """A ``train-text`` run directory's towers (``checkpoints/``) and exported catalogue (``index/``);
        errors name the missing file, or the export that does not match the towers. ``fusion``: ``head``
        (the run's ``train-fusion`` head, required), ``arithmetic``, or ``auto`` (the head when the run has
        one)."""
        run = Path(run_dir)
        source = run / "index" / EMBEDDINGS_FILE  # where train-text's exporter writes them
        embeddings, ids = load_embeddings(source)
        model = load_dual_encoder(run)
        dim = model.text_encoder.embedding_dim
        if embeddings.shape[1] != dim:
            raise ValueError(
                f"{source}: embeddings of dimension {embeddings.shape[1]}, but the run's text tower gives "
                f"{dim}: the file is not this run's export"
            )
        return cls(model, embeddings, list(ids), source, text_weight, fusion_function(run, fusion))

    @property
    def fusion(self) -> str:
        """How composed queries are fused: ``head`` or ``arithmetic``."""
        return "arithmetic" if self.fusion_head is None else "head"

    def product_embedding(self, product_id: str) -> np.ndarray:
        """``(D,)`` the exported image embedding of a catalogue product; KeyError for an unknown id."""
        return self.embeddings[self.rows[product_id]]

    def embed_image(self, image: np.ndarray) -> np.ndarray:
        """``(D,)`` the image tower's embedding of an ``(H, W, 3)`` uint8 RGB photo of one product, resized
        to the training's packshot size as the exported catalogue was."""
        pixels = apply(eval_transform(self.model.image_size), image)
        return self.model.embed_images(pixels[None])[0]

    def embed_text(self, text: str) -> np.ndarray:
        """``(D,)`` the text tower's embedding of ``text``."""
        return self.model.embed_texts([text])[0]

    def compose(self, image_embedding: np.ndarray, text_embedding: np.ndarray) -> np.ndarray:
        """``(D,)`` the composed query of ``(D,)`` image and text embeddings (the fusion head, else
        arithmetic)."""
        if self.fusion_head is not None:
            return self.fusion_head(image_embedding[None], text_embedding[None])[0]
        return composed_embeddings(image_embedding[None], text_embedding[None], self.text_weight)[0]

    def query(self, text: str, image_embedding: np.ndarray | None = None) -> np.ndarray:
        """``(D,)`` the query of ``text`` alone, or composed with ``(D,)`` ``image_embedding``."""
        embedded = self.embed_text(text)
        return embedded if image_embedding is None else self.compose(image_embedding, embedded)

    def search(
        self, query: np.ndarray, k: int, section: int | None = None, exclude: str | None = None
    ) -> list[tuple[str, float]]:
        """The ``k`` best ``(product id, cosine)`` for a ``(D,)`` query, best first: only products of
        ``section`` (and those of unknown section) when given; never ``exclude`` (a composed query's own
        product)."""
        depth = min(len(self.index), k + (exclude is not None))
        if section is None:
            scores, rows = self.index.search(query[None], depth)
        else:
            eligibility = Eligibility(np.asarray([section], dtype=np.int64), self.sections)
            rows, scores = search_eligible(self.index, query[None], eligibility, depth)
        ranked = [
            (self.ids[row], float(score))
            for row, score in zip(rows[0].tolist(), scores[0].tolist())
            if row >= 0 and self.ids[row] != exclude
        ]
        return ranked[:k]
