"""Contact sheet of a generated dataset: each row a bundle photo (boxes drawn) and its products' packshots.

``python -m fashion_retrieval.synthetic.preview DATA_DIR OUT.jpg [--rows 6]`` (used for
docs/img/synthetic_samples.jpg). Reads only the CSVs and JPEGs, so it works on the real data too
(without boxes).
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageDraw

from fashion_retrieval.data import catalogue as challenge_format
from fashion_retrieval.synthetic import writer


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def contact_sheet(
    data_dir: str | Path, rows: int = 6, height: int = 192, max_products: int = 5, skip: int = 0
) -> Image.Image:
    """``rows`` training bundles (from the ``skip``-th), each with up to ``max_products`` packshots."""
    root = Path(data_dir)
    matches: dict[str, list[str]] = defaultdict(list)
    for row in _rows(root / challenge_format.TRAIN_MATCHES_FILE):
        matches[row["bundle_asset_id"]].append(row["product_asset_id"])
    boxes: dict[str, list[tuple[int, int, int, int]]] = defaultdict(list)
    if (root / writer.BOXES_FILE).is_file():
        for row in _rows(root / writer.BOXES_FILE):
            boxes[row["bundle_asset_id"]].append(
                (int(row["x1"]), int(row["y1"]), int(row["x2"]), int(row["y2"]))
            )
    descriptions = {
        row["product_asset_id"]: row["product_description"]
        for row in _rows(root / challenge_format.PRODUCTS_FILE)
    }
    chosen = [b for b in matches if 2 <= len(matches[b]) <= max_products][skip : skip + rows]
    tiles: list[Image.Image] = []
    for bundle in chosen:
        photo = Image.open(root / writer.bundle_image_path(bundle)).convert("RGB")
        draw = ImageDraw.Draw(photo)
        for x1, y1, x2, y2 in boxes.get(bundle, []):
            draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=(230, 40, 40))
        scale = height / photo.height
        parts = [photo.resize((round(photo.width * scale), height), Image.LANCZOS)]
        for product in matches[bundle]:
            shot = Image.open(root / writer.product_image_path(product)).convert("RGB")
            shot = shot.resize((round(shot.width * height / shot.height), height), Image.LANCZOS)
            ImageDraw.Draw(shot).text((3, height - 12), descriptions.get(product, "")[:18], fill=(60, 60, 60))
            parts.append(shot)
        width = sum(p.width for p in parts) + 4 * (len(parts) - 1)
        tile = Image.new("RGB", (width, height), (255, 255, 255))
        x = 0
        for part in parts:
            tile.paste(part, (x, 0))
            x += part.width + 4
        tiles.append(tile)
    sheet_w = max(t.width for t in tiles)
    sheet = Image.new("RGB", (sheet_w, sum(t.height for t in tiles) + 6 * (len(tiles) - 1)), (255, 255, 255))
    y = 0
    for tile in tiles:
        sheet.paste(tile, (0, y))
        y += tile.height + 6
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=6)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--skip", type=int, default=0)
    parser.add_argument("--quality", type=int, default=80)
    args = parser.parse_args()
    contact_sheet(args.data_dir, args.rows, args.height, skip=args.skip).save(args.out, quality=args.quality)


if __name__ == "__main__":
    main()
