"""The layer order of ``fashion_retrieval``'s packages, written once in docs/architecture.md ("Layers"),
checked against every import of the package: module level and inside functions, since a function-level
import is still a dependency and the usual way a cycle hides."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fashion_retrieval"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# Imports against the order that other parts of issue 16 remove. Delete each entry when its change lands:
# test_known_exceptions_are_still_needed fails as soon as one is no longer needed.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}
# Listed in the layers before they exist; delete each name when its package lands.
PENDING_PACKAGES: dict[str, str] = {}


def read_layers(text: str) -> list[tuple[str, ...]]:
    """The ```` ```layers ```` block of docs/architecture.md, bottom layer first; one layer a line, written
    top to bottom, ``|`` between the packages of one layer."""
    match = re.search(r"```layers\n(.*?)```", text, re.DOTALL)
    if match is None:
        raise AssertionError(f"{ARCHITECTURE}: no ```layers block")
    lines = [line.strip() for line in match.group(1).splitlines() if line.strip()]
    return [tuple(name.strip() for name in line.split("|")) for line in reversed(lines)]


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """``fashion_retrieval/data/catalogue.py`` -> ``fashion_retrieval.data.catalogue`` (``__init__.py``:
    its package)."""
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of ``package``'s modules in ``path``, wherever it stands (module
    level, functions, ``TYPE_CHECKING`` blocks); relative imports resolved, ``from pkg import name``
    resolved to the module ``pkg.name`` when there is one."""
    root = package.name
    module = module_name(path, package)
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = [*here[: len(here) - node.level + 1], *([node.module] if node.module else [])]
            base = ".".join(parts if node.level else [node.module or ""])
            base_dir = package.parent.joinpath(*base.split("."))
            names = [
                f"{base}.{alias.name}"
                if (base_dir / alias.name).is_dir() or (base_dir / f"{alias.name}.py").is_file()
                else base
                for alias in node.names
            ]
        else:
            continue
        found += [(node.lineno, name) for name in dict.fromkeys(names) if name.split(".")[0] == root]
    return found


def top_level(module: str) -> str:
    """``fashion_retrieval.data.catalogue`` -> ``data``; the root package -> ``""``."""
    return module.split(".")[1] if "." in module else ""


def package_imports(package: Path = PACKAGE) -> dict[tuple[str, str], list[str]]:
    """``(importer, imported)`` top-level names of ``package`` -> ``file:line`` of each import between
    two different ones (``""``: the root ``__init__.py``)."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(package.rglob("*.py")):
        source = top_level(module_name(path, package))
        for line, name in imported_modules(path, package):
            target = top_level(name)
            if target not in (source, ""):  # the root runs before any import of the package anyway
                edges[(source, target)].append(f"{path.relative_to(package.parent)}:{line}")
    return dict(edges)


def against_the_layers(
    edges: dict[tuple[str, str], list[str]], layers: list[tuple[str, ...]]
) -> dict[tuple[str, str], list[str]]:
    """The imports of ``edges`` that do not go strictly down ``layers`` (bottom first); the root package
    (``""``) counts as below the bottom layer's packages but may import them."""
    level = {name: position for position, layer in enumerate(layers) for name in layer}
    level[""] = -1
    unknown = {name for edge in edges for name in edge} - set(level)
    if unknown:
        raise AssertionError(f"not in the layers of {ARCHITECTURE}: {sorted(unknown)}")
    return {
        (source, target): where
        for (source, target), where in edges.items()
        if level[source] <= level[target] and not (source == "" and level[target] == 0)
    }


def test_the_layers_name_every_package_once():
    layers = read_layers(ARCHITECTURE.read_text())
    names = [name for layer in layers for name in layer]
    assert len(names) == len(set(names)), f"{ARCHITECTURE}: a package is listed twice: {names}"
    present = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    present |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert not present - set(names), f"not in the layers of {ARCHITECTURE}: {sorted(present - set(names))}"
    missing = set(names) - present
    assert missing <= set(PENDING_PACKAGES), f"listed in the layers, but no such package: {sorted(missing)}"
    landed = set(PENDING_PACKAGES) & present
    assert not landed, f"delete from PENDING_PACKAGES, they exist now: {sorted(landed)}"


def test_every_import_goes_down_the_layers():
    """Also rules out package-level cycles: in a strict order nothing imports back up."""
    layers = read_layers(ARCHITECTURE.read_text())
    wrong = against_the_layers(package_imports(), layers)
    unexpected = {edge: where for edge, where in wrong.items() if edge not in KNOWN_EXCEPTIONS}
    report = "\n".join(f"{a} -> {b}: {', '.join(where)}" for (a, b), where in sorted(unexpected.items()))
    assert not unexpected, f"imports against the layers of {ARCHITECTURE}:\n{report}"


def test_known_exceptions_are_still_needed():
    wrong = against_the_layers(package_imports(), read_layers(ARCHITECTURE.read_text()))
    gone = {edge: why for edge, why in KNOWN_EXCEPTIONS.items() if edge not in wrong}
    assert not gone, f"fixed, delete from KNOWN_EXCEPTIONS: {gone}"


# --- the checker itself ---------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """``pkg`` with ``low`` (a package), ``mid.py`` and ``high`` (a package) in that order."""
    package = tmp_path / "pkg"
    write(package / "__init__.py", "")
    write(package / "low" / "__init__.py", "")
    write(package / "low" / "core.py", "import os\n")
    write(package / "mid.py", "from pkg.low.core import os\nfrom pkg import low\n")
    write(package / "high" / "__init__.py", "from .view import show\n")
    write(
        package / "high" / "view.py",
        "from __future__ import annotations\n"
        "from ..mid import os\n"
        "def show():\n"
        "    from pkg.low import core\n"
        "    import pkg.mid as m\n"
        "    return core, m\n",
    )
    return package


def test_imports_are_found_in_functions_and_relative_ones_are_resolved(toy: Path):
    found = imported_modules(toy / "high" / "view.py", toy)
    assert found == [(2, "pkg.mid"), (4, "pkg.low.core"), (5, "pkg.mid")]
    assert imported_modules(toy / "high" / "__init__.py", toy) == [(1, "pkg.high.view")]
    assert imported_modules(toy / "mid.py", toy) == [(1, "pkg.low.core"), (2, "pkg.low")]


def test_an_import_up_the_layers_or_across_one_is_reported(toy: Path):
    edges = package_imports(toy)
    assert set(edges) == {("mid", "low"), ("high", "mid"), ("high", "low")}
    assert edges[("high", "low")] == ["pkg/high/view.py:4"]
    assert against_the_layers(edges, [("low",), ("mid",), ("high",)]) == {}
    assert set(against_the_layers(edges, [("low",), ("high",), ("mid",)])) == {("high", "mid")}
    assert set(against_the_layers(edges, [("low",), ("mid", "high")])) == {("high", "mid")}
    with pytest.raises(AssertionError, match=r"not in the layers .*\['high'\]"):
        against_the_layers(edges, [("low",), ("mid",)])
    # The root runs before everything: it may import the bottom layer only.
    write(toy / "__init__.py", "from pkg import low\nimport pkg.high\n")
    edges = package_imports(toy)
    assert set(against_the_layers(edges, [("low",), ("mid",), ("high",)])) == {("", "high")}


def test_the_layers_block_reads_top_to_bottom():
    text = "intro\n```layers\ncli\nmodels | index\n\nio\n```\n"
    assert read_layers(text) == [("io",), ("models", "index"), ("cli",)]
    with pytest.raises(AssertionError, match="no ```layers block"):
        read_layers("no block")
