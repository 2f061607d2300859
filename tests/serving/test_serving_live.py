"""``fashion-retrieval serve`` as users run it: the command on a loopback port, its web page in headless
Chromium (Selenium), and the clients an in-process test cannot play (a stalled body, a chunked body over
the limit)."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
K = 6


def good_query(url: str, photo: Path) -> None:
    answer = httpx.post(f"{url}/search", files={"image": ("p.jpg", photo.read_bytes())}, data={"k": "3"})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["products"]) == 3


def read_response(client: socket.socket) -> str:
    """An HTTP response read whole (its headers and ``Content-Length`` bytes of body), as text."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < content_length(data):
        chunk = client.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode()


def content_length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_the_command_answers_a_photo_and_a_bundle(served, query_photo, tiny_service) -> None:
    good_query(served, query_photo)
    bundle = tiny_service.splits["test"][0]
    answer = httpx.post(f"{served}/search", json={"bundle_id": bundle}, timeout=60)
    assert answer.status_code == 200 and len(answer.json()["products"]) == 15
    assert httpx.get(f"{served}/info").json()["limits"]["max_upload_bytes"] == 2_000_000  # conftest's


def test_a_stalled_body_is_answered_408_and_the_server_keeps_serving(served, query_photo) -> None:
    timeout = httpx.get(f"{served}/info").json()["limits"]["body_timeout"]
    address = urlparse(served)
    with socket.create_connection((address.hostname, address.port), timeout=30) as client:
        client.sendall(
            b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"bundle_id": '
        )
        # The rest never comes: the server gives up after serve.body_timeout seconds.
        response = read_response(client)
    assert response.startswith("HTTP/1.1 408"), response
    assert f"serve.body_timeout = {timeout} s" in response
    good_query(served, query_photo)


def test_a_chunked_body_over_the_limit_is_refused_413(served, query_photo) -> None:
    limit = httpx.get(f"{served}/info").json()["limits"]["max_upload_bytes"]

    def chunks() -> Iterator[bytes]:
        for _ in range(limit // 65536 + 2):
            yield bytes(65536)

    answer = httpx.post(
        f"{served}/search", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"}
    )
    assert answer.status_code == 413 and "serve.max_upload_bytes" in answer.json()["error"]
    good_query(served, query_photo)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test: .ci/run installs chromium and chromium-driver")
        pytest.skip("no chromium and chromedriver here (Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_shows_an_uploaded_photos_products_and_boxes(served, browser, query_photo, tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.wait import WebDriverWait

    wait = WebDriverWait(browser, 120)
    browser.get(served)
    wait.until(lambda driver: len(Select(driver.find_element(By.ID, "detector")).options) == 2)
    Select(browser.find_element(By.ID, "detector")).select_by_value("zones")
    k_field = browser.find_element(By.ID, "k")
    k_field.clear()
    k_field.send_keys(str(K))
    browser.find_element(By.ID, "photo").send_keys(str(query_photo))
    wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#products .tile")) == K)
    wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#boxes .box")) >= 2)
    labels = {box.text for box in browser.find_elements(By.CSS_SELECTOR, "#boxes .box")}
    assert {"upper", "lower"} <= labels
    tiles = browser.find_elements(By.CSS_SELECTOR, "#products .tile")
    assert all(tile.find_element(By.TAG_NAME, "img").get_attribute("src") for tile in tiles)
    assert "score" in tiles[0].text and "embed" in browser.find_element(By.ID, "timings").text
    screenshot = tmp_path / "serve.png"
    assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000

    # The keyboard alone: a random validation bundle (Enter on its button), then the Search button again.
    browser.find_element(By.ID, "random-val").send_keys(Keys.ENTER)
    wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "status"), "bundle B_"))
    assert "of the bundle's" in browser.find_element(By.ID, "truth").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#products .tile")) == K

    # A text alone (Enter in the text box), then composed with a product chosen from the keyboard.
    def status_has(text: str) -> Callable[[object], bool]:
        return expected_conditions.text_to_be_present_in_element((By.ID, "status"), text)

    text_field = browser.find_element(By.ID, "text")
    text_field.send_keys("red shirt", Keys.ENTER)
    wait.until(status_has(f'{K} products for "red shirt"'))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#products .tile")) == K
    first = browser.find_element(By.CSS_SELECTOR, "#products .tile")
    chosen = first.get_attribute("data-product-id")
    first.send_keys(Keys.ENTER)  # chooses it and moves the focus to the text box
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait.until(status_has(f'products for product {chosen} + "red shirt" (arithmetic)'))
    ids = [
        t.get_attribute("data-product-id") for t in browser.find_elements(By.CSS_SELECTOR, "#products .tile")
    ]
    assert len(ids) == K and chosen not in ids

    # A refusal is shown, not swallowed.
    k_field.clear()
    k_field.send_keys("0", Keys.ENTER)
    wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "status"), "k: Input should be"))
