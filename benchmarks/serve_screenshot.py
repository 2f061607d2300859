"""The README's picture of the page: a running ``fashion-retrieval serve`` in headless Chromium.

    fashion-retrieval serve run_dir=... detector=yolo detector.weights=.../best.pt serve.port=8765 &
    python benchmarks/serve_screenshot.py --url http://127.0.0.1:8765 --bundle B_... \
        --output docs/images/serve.png

Opens the page, asks for ``--bundle`` (a dataset bundle; or ``--photo`` to upload a file) with
``--detector`` and ``--k``, waits for the tiles and the boxes, and saves a screenshot.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--bundle", help="a bundle id of the dataset")
    parser.add_argument("--photo", type=Path, help="a photo to upload instead")
    parser.add_argument("--detector", default="yolo")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--size", default="1280,1100", help="window width,height")
    parser.add_argument("--output", type=Path, default=Path("docs/images/serve.png"))
    args = parser.parse_args()
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={args.size}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        wait = WebDriverWait(driver, 300)
        driver.get(args.url)
        wait.until(lambda d: len(Select(d.find_element(By.ID, "detector")).options) > 0)
        Select(driver.find_element(By.ID, "detector")).select_by_value(args.detector)
        k_field = driver.find_element(By.ID, "k")
        k_field.clear()
        k_field.send_keys(str(args.k))
        if args.photo is not None:
            driver.find_element(By.ID, "photo").send_keys(str(args.photo.resolve()))
        else:
            # The page's own path for a bundle: its query state, then the Search button.
            driver.execute_script(f"lastQuery = {json.dumps({'bundleId': args.bundle})}; search();")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#products .tile")) == args.k)
        wait.until(lambda d: all(i.get_property("complete") for i in d.find_elements(By.TAG_NAME, "img")))
        args.output.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.output))
        print(f"wrote {args.output}")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
