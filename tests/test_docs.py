"""docs/architecture.md names every package of ``fashion_retrieval/`` and every config group of ``conf/``, so
adding one without documenting it fails here."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()
PACKAGE = ROOT / "fashion_retrieval"
CONF = PACKAGE / "conf"


def package_dirs() -> list[str]:
    """``fashion_retrieval/NAME/`` for every directory directly under the package (``conf/`` included)."""
    return sorted(
        f"fashion_retrieval/{d.name}/" for d in PACKAGE.iterdir() if d.is_dir() and d.name[0].isalpha()
    )


def config_group_dirs() -> list[str]:
    """``conf/GROUP/`` for every folder of the config tree; an experiment family
    (``conf/experiment/hardneg/``) holds one group's options, not a group, so only ``conf/experiment/``."""
    found = []
    for folder in sorted(CONF.rglob("*")):
        relative = folder.relative_to(CONF)
        if folder.is_dir() and folder.name[0].isalpha() and relative.parts[0] != "experiment":
            found.append(f"conf/{relative.as_posix()}/")
    return sorted({*found, "conf/experiment/"})


def test_the_listings_find_what_exists():
    # Guards the two listings themselves: an empty listing would make the tests below pass vacuously.
    assert {"fashion_retrieval/data/", "fashion_retrieval/pipelines/"} <= set(package_dirs())
    assert {"conf/model/", "conf/stage/", "conf/adapter/averaging/"} <= set(config_group_dirs())


def test_every_package_is_named_in_the_architecture():
    missing = [name for name in package_dirs() if f"`{name}`" not in ARCHITECTURE]
    assert not missing, f"docs/architecture.md does not name {missing} (diagram and 'Where things go')"


def test_every_config_group_is_named_in_the_architecture():
    missing = [name for name in config_group_dirs() if f"`{name}`" not in ARCHITECTURE]
    assert not missing, f"docs/architecture.md does not name {missing} ('Where things go')"
