"""The docs follow the code: docs/architecture.md names every package of ``fashion_retrieval/`` and every
config group of ``conf/``, and README.md's command table every subcommand of the registry, so adding one
without documenting it fails here."""

from __future__ import annotations

import re
from pathlib import Path

from fashion_retrieval.pipelines import registry

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()
README = (ROOT / "README.md").read_text()
PACKAGE = ROOT / "fashion_retrieval"
CONF = ROOT / "conf"


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


def readme_commands() -> dict[str, str]:
    """``{subcommand: group}`` from README.md's command table: ``| group | `fashion-retrieval CMD ...` |``."""
    rows = re.findall(r"^\| (\w+) \| `fashion-retrieval ([\w-]+)", README, flags=re.MULTILINE)
    return {command: group for group, command in rows}


def test_readme_command_table_lists_every_subcommand_in_its_group():
    wanted = {entry.command: entry.group for entry in (*registry.STAGES, *registry.COMMANDS)}
    table = readme_commands()
    missing = sorted(set(wanted) - set(table))
    misplaced = {c: (table[c], wanted[c]) for c in wanted.keys() & table.keys() if table[c] != wanted[c]}
    assert not missing, f"README.md's command table lacks {missing} (fashion_retrieval/pipelines/registry.py)"
    assert not misplaced, (
        f"README.md's command table puts these in another group (README, registry): {misplaced}"
    )


def test_readme_points_to_the_quickstart_record_and_ci_runs_its_test_command():
    # CI must run what the README tells people to run.
    assert "make test" in README and "make test" in (ROOT / ".ci" / "run").read_text()
    assert "(experiments/quickstart/README.md)" in README
