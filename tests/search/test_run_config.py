"""The names-only check of a run's config (``serve``'s parent, which builds nothing and imports nothing)
refuses what the full check refuses by name; only the full check imports a target to see it is a class."""

from __future__ import annotations

import pytest

from fashion_retrieval.search.run_config import check_built_targets


@pytest.mark.parametrize("classes", [True, False])
def test_foreign_targets_and_build_keys_are_refused_either_way(classes: bool) -> None:
    with pytest.raises(ValueError, match=r"steps\.a\._target_ = 'os\.system'"):
        check_built_targets({"steps": {"a": {"_target_": "os.system"}}}, "reranker", classes)
    with pytest.raises(ValueError, match=r"reranker\._args_: .* may not set Hydra's _args_"):
        check_built_targets({"_args_": [1]}, "reranker", classes)


def test_only_the_full_check_imports_the_target() -> None:
    missing = {"_target_": "fashion_retrieval.no_such_module.Step"}
    check_built_targets(missing, "reranker", classes=False)
    with pytest.raises(ValueError, match=r"may only build classes of fashion_retrieval"):
        check_built_targets(missing, "reranker")
    check_built_targets({"_target_": "fashion_retrieval.detection.zones.ZoneDetector"}, "detector")
