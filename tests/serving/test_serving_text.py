"""Text and composed queries in the service and in ``search-text`` (issue 18, section 3): the answers are
the dual encoder's ranking recomputed here from its reloaded towers and exported catalogue, bad input is a
4xx naming the field while the server keeps serving, and a service without a text model says what to
pass."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from omegaconf import open_dict

from fashion_retrieval.index.embeddings import load_embeddings
from fashion_retrieval.index.export import EMBEDDINGS_FILE
from fashion_retrieval.models.dual_encoder import load_dual_encoder
from fashion_retrieval.models.fusion import FusionHead, save_fusion_head
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.search_text import search_text
from fashion_retrieval.search.text import TextSearch
from fashion_retrieval.serving.app import create_app
from fashion_retrieval.serving.service import SearchService
from fashion_retrieval.serving.spec import service_spec
from tests.test_configs import compose_config

QUERY = "red shirt"
MAX_TEXT_CHARS = 40


@pytest.fixture(scope="module")
def client(text_service: SearchService) -> TestClient:
    return TestClient(create_app(text_service, max_k=50, max_text_chars=MAX_TEXT_CHARS))


@pytest.fixture(scope="module")
def reference(tiny_text_run: Path) -> tuple:
    """``(dual encoder, (G, D) exported catalogue, ids)`` of the text run, loaded independently."""
    embeddings, ids = load_embeddings(tiny_text_run / "index" / EMBEDDINGS_FILE)
    return load_dual_encoder(tiny_text_run), embeddings, list(ids)


def expected_ranking(query: np.ndarray, embeddings: np.ndarray, ids: list[str], k: int, exclude=None) -> list:
    order = [ids[i] for i in np.argsort(-(embeddings @ query), kind="stable") if ids[i] != exclude]
    return order[:k]


def arithmetic(image: np.ndarray, text: np.ndarray, weight: float = 1.0) -> np.ndarray:
    fused = image + weight * text
    return fused / np.linalg.norm(fused)


def ranked_ids(answer) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [p["product_asset_id"] for p in answer.json()["products"]]


def assert_text_still_answers(client: TestClient) -> None:
    assert len(ranked_ids(client.post("/search", json={"text": QUERY, "k": 3}))) == 3


def test_a_text_ranks_the_exported_catalogue_by_the_text_tower(client, reference) -> None:
    dual, embeddings, ids = reference
    answer = client.post("/search", json={"text": QUERY, "k": 7})
    body = answer.json()
    query = dual.embed_texts([QUERY])[0]
    assert ranked_ids(answer) == expected_ranking(query, embeddings, ids, 7)
    scores = [p["score"] for p in body["products"]]
    assert scores == pytest.approx(np.sort(embeddings @ query)[::-1][:7].tolist(), abs=1e-4)
    assert body["query"] == "text" and body["text"] == QUERY and body["fusion"] is None
    assert body["timings_ms"]["embed_text"] > 0 and body["crops"] == [] and body["truth"] is None
    first = body["products"][0]
    assert first["image_url"] == f"/products/{first['product_asset_id']}/image"
    # The same query as a multipart form field (the page's way), without a photo.
    assert ranked_ids(client.post("/search", files={"text": (None, QUERY)}, data={"k": "7"})) == ranked_ids(
        answer
    )


def test_a_composed_query_by_product_fuses_by_arithmetic_and_leaves_the_product_out(
    client, reference
) -> None:
    dual, embeddings, ids = reference
    product = ids[3]
    answer = client.post("/search", json={"product_id": product, "text": "in black", "k": 5})
    body = answer.json()
    query = arithmetic(embeddings[3], dual.embed_texts(["in black"])[0])
    assert ranked_ids(answer) == expected_ranking(query, embeddings, ids, 5, exclude=product)
    assert body["query"] == "composed" and body["fusion"] == "arithmetic" and body["product_id"] == product
    assert body["image_url"] == f"/products/{product}/image"


def test_a_composed_query_with_a_photo_embeds_it_with_the_image_tower(
    client, text_service, reference
) -> None:
    dual, embeddings, ids = reference
    path = text_service.products[ids[5]]["path"]
    answer = client.post(
        "/search", files={"image": ("p.jpg", path.read_bytes())}, data={"text": "in black", "k": "5"}
    )
    image = dual.embed_products([str(path)])[0]
    query = arithmetic(image, dual.embed_texts(["in black"])[0])
    assert ranked_ids(answer) == expected_ranking(query, embeddings, ids, 5)
    body = answer.json()
    assert body["query"] == "composed" and body["timings_ms"]["embed"] > 0
    assert body["crops"] == [{"box": None, "label": "whole", "score": 0.0}]


def test_the_section_option_keeps_that_sections_products(client) -> None:
    unfiltered = client.post("/search", json={"text": QUERY, "k": 20}).json()["products"]
    sections = sorted({p["section"] for p in unfiltered} - {-1})
    assert len(sections) >= 2, sections
    answer = client.post("/search", json={"text": QUERY, "k": 20, "section": sections[0]})
    assert {p["section"] for p in answer.json()["products"]} <= {sections[0], -1}
    assert len(ranked_ids(answer)) == 20


def test_bad_text_queries_are_refused_by_name_and_the_server_keeps_serving(client, text_service) -> None:
    photo = next(iter(text_service.products.values()))["path"].read_bytes()
    product = next(iter(text_service.products))
    cases = [
        (client.post("/search", json={"text": ""}), 422, "text: Value error, the text is empty"),
        (client.post("/search", json={"text": " \t\n"}), 422, "the text is empty or only whitespace"),
        (
            client.post("/search", json={"text": "x" * 41}),
            422,
            "serve.max_text_chars = 40 characters, got 41",
        ),
        (client.post("/search", json={"text": 5}), 422, "text: Input should be a valid string"),
        (client.post("/search", json={"text": ["red"]}), 422, "text: Input should be a valid string"),
        (client.post("/search", json={"product_id": product}), 422, "text: Field required"),
        (client.post("/search", json={"text": "in black", "product_id": "I_nothere"}), 404, "'I_nothere'"),
        (client.post("/search", json={"text": "a", "product_id": "../x"}), 400, "not a valid id"),
        (client.post("/search", json={"text": "a", "detector": "zones"}), 422, "detector: Extra inputs"),
        (client.post("/search", json={"text": "a", "bundle_id": "B_1"}), 422, "bundle_id: Extra inputs"),
        (client.post("/search", json={"text": "a", "k": 0}), 422, "k: Input should be greater"),
        (
            client.post(
                "/search",
                files={"image": ("p.jpg", photo)},
                data={"text": "in black", "product_id": product},
            ),
            400,
            "an image or a product_id, not both",
        ),
        (client.post("/search", files={"image": ("p.jpg", b"")}, data={"text": "a"}), 400, "empty"),
        (
            client.post("/search", files={"image": ("p.jpg", photo[:300])}, data={"text": "a"}),
            400,
            "truncated",
        ),
        (client.post("/search", data={"image": "not a file", "text": "a"}), 400, "'image' must be a file"),
    ]
    for answer, status, message in cases:
        assert answer.status_code == status, (answer.request.content[:200], answer.text)
        assert message in answer.json()["error"], answer.text
        assert_text_still_answers(client)


def test_info_says_whether_text_is_available(client, tiny_service, tiny_text_run, reference) -> None:
    info = client.get("/info").json()
    assert info["text"] == {
        "available": True,
        "run_dir": str(tiny_text_run),
        "products": len(reference[2]),
        "fusion": "arithmetic",
        "text_weight": 1.0,
    }
    assert info["limits"]["max_text_chars"] == MAX_TEXT_CHARS
    plain = TestClient(create_app(tiny_service))
    assert plain.get("/info").json()["text"]["available"] is False
    refused = plain.post("/search", json={"text": QUERY})
    assert refused.status_code == 400 and "serve.text_run_dir=<train-text run>" in refused.json()["error"]


def test_a_text_run_adds_text_to_another_runs_service(tiny_run, tiny_text_run, client) -> None:
    _, run_dir, _ = tiny_run
    service = SearchService.from_run_dir(run_dir, text_run_dir=tiny_text_run)
    added = TestClient(create_app(service))
    # Photos: the tiny run's own model; text: the text run's towers, the same answer as the text run's.
    assert service.retriever.encoder is not service.text.model.image_encoder
    assert ranked_ids(added.post("/search", json={"text": QUERY, "k": 5})) == ranked_ids(
        client.post("/search", json={"text": QUERY, "k": 5})
    )
    # serve picks the text run: serve.text_run_dir, else run_dir itself when it is a train-text run.
    for run, overrides, expected in [
        (run_dir, [f"serve.text_run_dir={tiny_text_run}"], tiny_text_run),
        (tiny_text_run, [], tiny_text_run),
        (run_dir, [], None),
    ]:
        composed = compose_config(["experiment=tiny", f"run_dir={run}", *overrides])
        assert service_spec(composed, [f"run_dir={run}", *overrides]).text_run == expected
    composed = compose_config(["experiment=tiny", f"run_dir={run_dir}", f"serve.text_run_dir={run_dir}"])
    with pytest.raises(FileNotFoundError, match=re.escape("is it a train-text run?")):
        service_spec(composed, [])


def test_a_text_run_of_other_products_is_refused_at_start(tiny_run, reference, tmp_path) -> None:
    dual, embeddings, ids = reference
    _, run_dir, _ = tiny_run
    foreign = TextSearch(dual, embeddings[:2], ["I_elsewhere", ids[1]], tmp_path / EMBEDDINGS_FILE)
    service = SearchService.from_run_dir(run_dir)
    with pytest.raises(ValueError, match="1 of its 2 products are not in this service's catalogue"):
        SearchService(service.retriever, text=foreign)


def test_search_text_prints_composed_queries(
    text_service, tiny_text_run, reference, tmp_path, capsys
) -> None:
    dual, embeddings, ids = reference
    cfg = compose_config(["experiment=text_tiny", f"run_dir={tiny_text_run}"], output_dir=str(tmp_path))
    text = dual.embed_texts(["in black"])[0]

    def printed(**settings: object) -> list[str]:
        with open_dict(cfg):
            cfg.search_text.update(
                {"query": "in black", "k": 4, "product_id": None, "image": None, **settings}
            )
        capsys.readouterr()
        search_text(cfg, RunContext(output_dir=tmp_path))
        return [line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]]

    by_id = printed(product_id=ids[2])
    assert by_id == expected_ranking(arithmetic(embeddings[2], text), embeddings, ids, 4, exclude=ids[2])
    path = text_service.products[ids[2]]["path"]
    by_photo = printed(image=str(path))
    photo = dual.embed_products([str(path)])[0]
    assert by_photo == expected_ranking(arithmetic(photo, text), embeddings, ids, 4)
    weighted = printed(product_id=ids[2], text_weight=3.0)
    expected = expected_ranking(arithmetic(embeddings[2], text, 3.0), embeddings, ids, 4, exclude=ids[2])
    assert weighted == expected
    with pytest.raises(KeyError, match=re.escape("search_text.product_id=I_nothere")):
        printed(product_id="I_nothere")
    with pytest.raises(ValueError, match="not both"):
        printed(product_id=ids[2], image=str(path))


def test_a_trained_fusion_head_composes_the_queries_when_the_run_has_one(
    tiny_text_run: Path, tmp_path, reference
):
    dual, embeddings, ids = reference
    run = tmp_path / "run_with_head"  # the text run's towers and export, plus a fusion head of its own
    run.mkdir()
    for part in ("checkpoints", "index"):
        (run / part).symlink_to(tiny_text_run / part)
    with pytest.raises(FileNotFoundError, match="train-fusion"):
        TextSearch.from_run_dir(run, fusion="head")
    torch.manual_seed(0)
    head = FusionHead(embeddings.shape[1], hidden_dim=16)
    for parameter in head.parameters():  # an untrained head is arithmetic: randomise it so the test can fail
        torch.nn.init.normal_(parameter, std=0.5)
    save_fusion_head(head, run)
    text = dual.embed_texts(["in black"])[0]
    by_head = head.fuse(embeddings[2][None], text[None])[0]
    assert not np.allclose(by_head, arithmetic(embeddings[2], text), atol=1e-3)
    searcher = TextSearch.from_run_dir(run)  # fusion=auto: the head, since the run has one
    assert searcher.fusion == "head"
    ranked = [
        product
        for product, _ in searcher.search(searcher.query("in black", embeddings[2]), 4, exclude=ids[2])
    ]
    assert ranked == expected_ranking(by_head, embeddings, ids, 4, exclude=ids[2])
    assert TextSearch.from_run_dir(run, fusion="arithmetic").fusion == "arithmetic"
    with pytest.raises(ValueError, match="fusion='mean'"):
        TextSearch.from_run_dir(run, fusion="mean")


def test_the_service_spec_looks_for_the_tokenizer_file_the_text_tower_writes() -> None:
    # spec.py names the file itself so that serve's parent never imports the text tower (transformers).
    from fashion_retrieval.models.text import TOKENIZER_FILE
    from fashion_retrieval.serving.spec import TOKENIZER_PATH

    assert TOKENIZER_PATH.name == TOKENIZER_FILE
