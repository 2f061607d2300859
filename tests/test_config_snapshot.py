"""Issue 16 moved the configs (stage files, re-ranking steps, renamed groups) without changing a value: the
resolved config of every experiment and of every re-ranker, adapter and reader option equals, key by key,
its resolved config at main 42b8bc0 (``config_snapshots/before_issue16.json``), under the new names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf
from test_configs import compose_config

from fashion_retrieval.renamed import RENAMED_EXPERIMENTS, rename_key, rename_override

SNAPSHOT = json.loads((Path(__file__).parent / "config_snapshots" / "before_issue16.json").read_text())
# The old compound re-rankers as lists of steps (their files are aliases kept for one release).
RERANKER_STEPS = {
    "none": "[]",
    "original": "[section,gate,colour]",
    "original_metadata": "[section,gate,colour,metadata]",
    "original_priors": "[section,gate,colour,timestamp,article]",
    "original_bundle_priors": "[section,gate,colour,bundle_priors]",
    "priors": "[timestamp,article]",
    "priors_bundle_priors": "[timestamp,article,bundle_priors]",
    "timestamp": "[timestamp]",
    "bundle_priors": "[bundle_priors]",
}
# Settings of stages added after the snapshot (issue 17's `serve`, issue 18's `text_eval`, `text`,
# `search_text`, `generate.captions_only`, `fusion` and retrieval-eval's text queries, issue 19's `pretrain`
# with `method=`'s module): new keys, not moved ones.
# Also `threads` (issue 16 item 8: torch threads chosen from the machine, `auto` by default), and issue 14's
# `data.extra_training_sets` (further training directories, empty by default).
ADDED_AFTER_SNAPSHOT = re.compile(
    r"run_dir|serve\..+|text_eval\..+|text\..+|search_text\..+|generate\.captions_only|threads|pretrain\..+"
    r"|fusion\..+|retrieval_eval\.(text_queries|class_texts\..+)|data\.extra_training_sets"
)
# Loader workers chosen from the machine since issue 16 item 8 (`${auto_workers:...}`, tests/test_machine.py
# checks the rule): compared only where a config sets a number of its own.
MACHINE_CHOSEN = re.compile(r"(data|features|real_photos)\.num_workers")
CHOSEN_FROM_THE_MACHINE = "<chosen from the machine>"


def flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; an empty dict stays a value."""
    if not isinstance(node, dict) or not node:
        return {prefix: node}
    found: dict[str, Any] = {}
    for key, value in node.items():
        found.update(flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return found


def resolved(overrides: list[str]) -> dict[str, Any]:
    """The flat resolved config (Hydra's node left out), the launch directory written ``<cwd>``, and the
    order of the re-ranking steps (the chain runs them in key order)."""
    cfg = compose_config(overrides, output_dir="/snapshot/run")
    plain = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    raw = flat(OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])))
    found = {k: v for k, v in flat(plain).items() if not ADDED_AFTER_SNAPSHOT.fullmatch(k)}
    for key in [k for k in found if MACHINE_CHOSEN.fullmatch(k)]:
        if str(raw[key]).startswith("${auto_workers:"):
            found[key] = CHOSEN_FROM_THE_MACHINE
    found["reranker.steps.__order__"] = list(plain["reranker"]["steps"])
    cwd = str(Path.cwd())
    return {k: v.replace(cwd, "<cwd>") if isinstance(v, str) else v for k, v in found.items()}


def active_steps(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without re-ranking steps set to null: the chain skips them (``RerankChain``), and
    ``reranker=timestamp`` used to be the metadata priors with ``steps.article: null``."""
    off = [k for k, v in config.items() if re.fullmatch(r"reranker\.steps\.\w+", k) and v is None]
    kept = {k: v for k, v in config.items() if k not in off}
    kept["reranker.steps.__order__"] = [
        s for s in config["reranker.steps.__order__"] if f"reranker.steps.{s}" not in off
    ]
    return kept


def expected(case: str) -> dict[str, Any]:
    """The snapshot's resolved config of ``case`` (old overrides), under the new key names."""
    config = dict(SNAPSHOT["base"])
    if case:
        diff = SNAPSHOT["cases"][case]
        config.update(diff["changed"])
        config.update(diff["added"])
        for key in diff["removed"]:
            del config[key]
    config = {rename_key(k): v for k, v in config.items()}
    experiment = re.fullmatch(r"experiment=(.+)", case)
    if experiment and experiment.group(1) in RENAMED_EXPERIMENTS:
        # run_name is the experiment's name, and the loggers' run names interpolate it.
        old, new = experiment.group(1), RENAMED_EXPERIMENTS[experiment.group(1)]
        config = {k: new if v == old else v for k, v in config.items()}
    return config


def assert_same(actual: dict[str, Any], wanted: dict[str, Any], label: str) -> None:
    missing = sorted(set(wanted) - set(actual))
    extra = sorted(set(actual) - set(wanted))
    differ = {
        k: (actual[k], wanted[k])
        for k in wanted.keys() & actual.keys()
        if actual[k] != wanted[k] and actual[k] != CHOSEN_FROM_THE_MACHINE
    }
    assert not (missing or extra or differ), (
        f"{label}: missing {missing}, extra {extra}, (now, before) {differ}"
    )


@pytest.mark.parametrize("case", ["", *sorted(SNAPSHOT["cases"])])
def test_resolved_config_is_unchanged(case):
    overrides = [rename_override(o) for o in case.split()]
    assert_same(active_steps(resolved(overrides)), active_steps(expected(case)), case or "no overrides")


@pytest.mark.parametrize("old", sorted(RERANKER_STEPS))
def test_old_reranker_names_equal_their_lists_of_steps(old):
    now = resolved([f"reranker={RERANKER_STEPS[old]}"])
    assert_same(active_steps(now), active_steps(expected(f"reranker={old}")), old)
