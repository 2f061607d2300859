"""The service's API answers what the Retriever answers, and refuses bad input with a 4xx JSON error
naming the problem while it keeps serving (issue 17, section 5)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fashion_retrieval.serving.app import create_app
from fashion_retrieval.serving.service import SearchService
from fashion_retrieval.serving.spec import override_keys, service_spec
from tests.test_configs import compose_config

MAX_UPLOAD_BYTES = 1_000_000


@pytest.fixture(scope="module")
def client(tiny_service: SearchService) -> TestClient:
    return TestClient(create_app(tiny_service, max_upload_bytes=MAX_UPLOAD_BYTES, max_k=50, seed=0))


def upload(client: TestClient, data: bytes, name: str = "photo.jpg", **options: str):
    return client.post("/search", files={"image": (name, data, "application/octet-stream")}, data=options)


def assert_still_serves(client: TestClient, photo: Path) -> None:
    answer = upload(client, photo.read_bytes(), k="3")
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["products"]) == 3


def png_with_size(width: int, height: int) -> bytes:
    """A 1 x 1 PNG whose header claims ``width x height`` (a decompression bomb's header)."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    return bytes(data)


def test_an_upload_ranks_like_the_retriever_and_draws_its_crops(client, tiny_service, query_photo) -> None:
    data = query_photo.read_bytes()
    answer = upload(client, data, k="5", detector="zones")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    (expected,) = tiny_service.retrievers["zones"].search([data], k=5)
    assert [p["product_asset_id"] for p in body["products"]] == [p.product_id for p in expected.products]
    assert body["detector"] == "zones" and body["bundle_id"] is None and body["truth"] is None
    assert {c["label"] for c in body["crops"]} >= {"upper", "lower"}
    assert all(len(c["box"]) == 4 for c in body["crops"])
    assert all(p["crop"] in body["crops"] for p in body["products"] if p["crop"] is not None)
    assert body["timings_ms"]["embed"] > 0 and body["timings_ms"]["decode"] > 0
    first = body["products"][0]
    assert first["image_url"] == f"/products/{first['product_asset_id']}/image" and first["hit"] is None


def test_a_bundle_by_id_is_infers_answer_with_its_truth(client, tiny_service) -> None:
    bundle = tiny_service.splits["val"][0]
    answer = client.post("/search", json={"bundle_id": bundle, "k": 15})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    (expected,) = tiny_service.retriever.search_bundles([bundle], k=15)
    assert [p["product_asset_id"] for p in body["products"]] == [p.product_id for p in expected.products]
    truth = tiny_service.retriever.catalogue.products_of([bundle])[bundle]
    assert body["truth"] == truth and body["section"] == tiny_service.bundle_sections[bundle]
    assert [p["hit"] for p in body["products"]] == [p["product_asset_id"] in truth for p in body["products"]]
    assert client.get(body["image_url"]).content == tiny_service.bundle_paths[bundle].read_bytes()
    other = 1 + body["section"] % 3
    refused = client.post("/search", json={"bundle_id": bundle, "section": other})
    assert refused.status_code == 400 and f"section {body['section']}" in refused.json()["error"]


def test_products_images_health_info_and_docs(client, tiny_service) -> None:
    product_id = tiny_service.retriever.product_ids[0]
    product = client.get(f"/products/{product_id}").json()
    assert product["category"] == tiny_service.retriever.categories[0]
    image = client.get(product["image_url"])
    assert (
        image.status_code == 200 and image.content == tiny_service.products[product_id]["path"].read_bytes()
    )
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/info").json()
    assert info["index"]["size"] == len(tiny_service.retriever.product_ids)
    assert info["detectors"] == ["none", "zones"] and info["limits"]["max_k"] == 50
    assert "val/recall@15" in info["metrics"]
    assert (
        client.get("/bundles/random", params={"split": "test"}).json()["bundle_id"]
        in tiny_service.splits["test"]
    )
    assert "/search" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200


@pytest.fixture(scope="module")
def photo_array(query_photo: Path) -> np.ndarray:
    return cv2.imread(str(query_photo))


def encoded(array: np.ndarray, extension: str) -> bytes:
    ok, data = cv2.imencode(extension, array)
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("extension", [".png", ".webp"])
def test_png_and_webp_are_accepted(client, photo_array, extension) -> None:
    answer = upload(client, encoded(photo_array, extension), name=f"photo{extension}", k="4")
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["products"]) == 4


def gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="GIF")
    return buffer.getvalue()


BAD_UPLOADS = {
    "not an image": (b"hello, this is text", 400, "not an image"),
    "zero bytes": (b"", 400, "empty"),
    "GIF": (gif(), 415, "GIF images are not supported"),
    "HEIC": (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), 415, "HEIF/AVIF"),
    "bomb header": (png_with_size(20000, 20000), 400, "400000000 pixels"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_uploads_are_refused_by_name_and_the_server_keeps_serving(client, query_photo, case) -> None:
    data, status, message = BAD_UPLOADS[case]
    answer = upload(client, data)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    assert_still_serves(client, query_photo)


def test_a_truncated_jpeg_is_refused(client, query_photo) -> None:
    answer = upload(client, query_photo.read_bytes()[:500])
    assert answer.status_code == 400 and "truncated JPEG" in answer.json()["error"]
    assert_still_serves(client, query_photo)


def test_bad_requests_are_refused_by_name_and_the_server_keeps_serving(client, query_photo) -> None:
    photo = query_photo.read_bytes()
    cases = [
        (upload(client, photo + bytes(MAX_UPLOAD_BYTES)), 413, "serve.max_upload_bytes"),
        (client.post("/search", json={"bundle_id": "B_nothere"}), 404, "unknown bundle id 'B_nothere'"),
        (client.post("/search", json={"bundle_id": "../../etc/passwd"}), 400, "not a valid id"),
        (client.get("/products/I_nothere"), 404, "unknown product id 'I_nothere'"),
        (client.get("/products/..%2F..%2Fsecret/image"), 404, ""),
        (client.get("/products/.hidden/image"), 400, "not a valid id"),
        (client.get("/bundles/B_nothere/image"), 404, "unknown bundle id"),
        (upload(client, photo, k="0"), 422, "k: Input should be greater than or equal to 1"),
        (upload(client, photo, k="51"), 422, "serve.max_k = 50"),
        (upload(client, photo, k="many"), 422, "k: Input should be a valid integer"),
        (upload(client, photo, detector="yolo"), 400, "detector 'yolo' is not loaded"),
        (upload(client, photo, colour="red"), 422, "colour: Extra inputs are not permitted"),
        (client.post("/search", content=photo, headers={"content-type": "image/jpeg"}), 415, "multipart"),
        (client.post("/search", content=b"{not json", headers={"content-type": "application/json"}), 400, ""),
        (client.post("/search", json=["B_1"]), 400, "must be an object"),
        (client.post("/search", json={"k": 3}), 422, "bundle_id: Field required"),
        (client.post("/search", data={"k": "3"}, files={"other": ("a", b"x")}), 400, "no file field 'image'"),
        (client.get("/bundles/random", params={"split": "train"}), 400, "split must be one of"),
    ]
    for answer, status, message in cases:
        assert answer.status_code == status, (answer.request.url, answer.text)
        assert message in answer.json()["error"], answer.text
        assert_still_serves(client, query_photo)


def test_serve_takes_the_run_config_with_the_command_line_keys(tiny_run) -> None:
    workdir, run_dir, _ = tiny_run
    overrides = [f"run_dir={run_dir}", "detector=zones", "retrieval.k=7", "serve.port=9000"]
    assert override_keys([*overrides, "+a.b=1", "hydra.run.dir=x"]) == ["detector", "retrieval.k", "a.b"]
    composed = compose_config(["experiment=tiny", f"paths.data_dir={workdir / 'nowhere'}", *overrides])
    spec = service_spec(composed, overrides)
    assert spec.config.detector._target_.endswith("ZoneDetector") and spec.config.retrieval.k == 7
    # The run's own data, not the composed config's.
    assert spec.config.data.data_dir != str(workdir / "nowhere")
    assert spec.checkpoint == run_dir / "checkpoints/best.ckpt" and spec.settings["port"] == 9000
    assert spec.config.index.mmap is True and spec.config.data.num_workers == 0
    with pytest.raises(ValueError, match="serve needs run_dir"):
        service_spec(compose_config(["experiment=tiny"]), [])
