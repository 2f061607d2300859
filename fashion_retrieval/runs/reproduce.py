"""``fashion-retrieval reproduce <run dir>``: rerun a past run from what it saved and compare its metrics.

The recipe comes from the run's ``provenance.json``: the subcommand (Hydra's job name), the stages and the
config overrides (``experiment=...`` plus whatever was set on the command line or by a sweep). The rerun
composes today's ``conf/`` with those overrides through the real entry point, in a new run directory,
from the directory the run was launched from (its ``paths.root_dir``, so relative paths mean the same);
then every metric of both ``metrics.json`` files is compared within a tolerance. Sweep machinery is left
out (``hparams_search``, ``launcher``, ``hydra/...`` overrides): a reproduction is one local run.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import math
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from fashion_retrieval.evaluation.run_files import METRICS_FILE, read_metrics
from fashion_retrieval.evaluation.sweep_report import flatten
from fashion_retrieval.io import HYDRA_BUILD_KEYS, RUN_CONFIG_FILE, atomic_open, write_json
from fashion_retrieval.renamed import rename_override
from fashion_retrieval.runs.provenance import PROVENANCE_FILE, git_state

log = logging.getLogger(__name__)

# Wall-clock figures are not expected to reproduce; a rerun that finds its data skips `generate`.
DEFAULT_IGNORE = ("*seconds*", "*per_second*")
# Override keys that only steer a sweep: dropped, so the rerun is a single local run.
SWEEP_GROUPS = ("hparams_search", "launcher")
COMPARISON_MD = "reproduce.md"
COMPARISON_JSON = "reproduce.json"


class ReproduceError(RuntimeError):
    """The run directory cannot be reproduced (missing or incomplete records)."""


@dataclass(frozen=True)
class Recipe:
    """How a run was made: ``fashion-retrieval <subcommand> <overrides>`` launched from ``root_dir``."""

    subcommand: str
    overrides: list[str]
    root_dir: Path | None
    run_name: str
    log_dir: Path | None
    git: dict[str, Any]


@dataclass(frozen=True)
class MetricRow:
    name: str
    saved: float | None
    reproduced: float | None
    status: str  # same | differs | missing (not in the rerun) | new (only in the rerun) | ignored

    @property
    def difference(self) -> float | None:
        if self.saved is None or self.reproduced is None:
            return None
        return self.reproduced - self.saved


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def rerun_overrides(task_overrides: Sequence[str], subcommand: str, stages: Sequence[str]) -> list[str]:
    """The saved ``task`` overrides less the sweep machinery; ``run`` gets its stages spelled out (an
    ``hparams_search`` config may have set them) and every rerun is a single run."""
    kept = [
        rename_override(override)  # a run made before issue 16's renames reruns under the new names
        for override in task_overrides
        if _override_key(override) not in (*SWEEP_GROUPS, "stages")
        and not _override_key(override).startswith("hydra")
    ]
    if subcommand == "run":
        kept.append(f"stages=[{','.join(stages)}]")
    return [*kept, "hydra.mode=RUN"]


def read_recipe(run_dir: str | Path, subcommands: Sequence[str]) -> Recipe:
    """The recipe of ``run_dir`` from its ``provenance.json`` and ``config_resolved.yaml``."""
    run_dir = Path(run_dir)
    provenance_path = run_dir / PROVENANCE_FILE
    if not provenance_path.is_file():
        raise ReproduceError(f"{provenance_path} not found: is {run_dir} a run directory?")
    record = json.loads(provenance_path.read_text())
    overrides = record.get("overrides")
    if not overrides:
        raise ReproduceError(
            f"{provenance_path}: 'overrides' is null (the run was not started through Hydra)"
        )
    # A run directory is data (docs/security.md): its overrides may choose conf/'s options and set values,
    # never name a class or function for Hydra to build.
    building = [o for o in overrides.get("task", []) if any(key in o for key in HYDRA_BUILD_KEYS)]
    if building:
        raise ReproduceError(
            f"{provenance_path}: override {building[0]!r} names what Hydra would build; reproduce reruns "
            "only conf/'s options with plain values (run the command yourself if you trust its author)"
        )
    job_names = [o.split("=", 1)[1] for o in overrides.get("hydra", []) if o.startswith("hydra.job.name=")]
    subcommand = job_names[-1] if job_names and job_names[-1] in subcommands else "run"
    config_path = run_dir / RUN_CONFIG_FILE
    config = yaml.safe_load(config_path.read_text()) if config_path.is_file() else {}
    paths = config.get("paths") or {}
    return Recipe(
        subcommand=subcommand,
        overrides=rerun_overrides(overrides.get("task", []), subcommand, record.get("stages") or []),
        root_dir=Path(paths["root_dir"]) if paths.get("root_dir") else None,
        run_name=str(config.get("run_name", "default")),
        log_dir=Path(paths["log_dir"]) if paths.get("log_dir") else None,
        git=record.get("git") or {},
    )


def git_warnings(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Why the code of the rerun may not be the code of the run (commit changed, uncommitted edits)."""
    warnings = []
    if saved.get("commit") and current.get("commit") and saved["commit"] != current["commit"]:
        warnings.append(
            f"the run was made at commit {saved['commit'][:12]}, this checkout is at {current['commit'][:12]}"
        )
    if saved.get("dirty"):
        warnings.append("the run was made from a checkout with uncommitted changes")
    if current.get("dirty"):
        warnings.append("this checkout has uncommitted changes")
    if not saved.get("commit") or not current.get("commit"):
        reason = saved.get("reason") or current.get("reason") or "unknown"
        warnings.append(f"the code version cannot be compared ({reason})")
    return warnings


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's resolved config, flattened, with its own directory written ``<run dir>``: output paths
    differ between a run and its rerun by construction."""
    path = run_dir / RUN_CONFIG_FILE
    config = flatten(yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}
    own = str(config.get("paths.output_dir") or run_dir)  # as the run wrote it (maybe relative)
    return {
        key: value.replace(own, "<run dir>") if isinstance(value, str) else value
        for key, value in config.items()
    }


def config_changes(saved: Mapping[str, Any], rerun: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, rerun value)`` for every flattened key whose value differs or exists on one side
    only (``None``): today's ``conf/`` may set values the run never had, or change defaults."""
    missing = object()
    changes = []
    for key in sorted({*saved, *rerun}):
        before, after = saved.get(key, missing), rerun.get(key, missing)
        if before != after:
            changes.append((key, None if before is missing else before, None if after is missing else after))
    return changes


def _close(saved: float, reproduced: float, atol: float, rtol: float) -> bool:
    if math.isnan(saved) or math.isnan(reproduced):
        return math.isnan(saved) and math.isnan(reproduced)
    return abs(reproduced - saved) <= atol + rtol * abs(saved)


def compare_metrics(
    saved: Mapping[str, float],
    reproduced: Mapping[str, float],
    atol: float = 1e-6,
    rtol: float = 0.0,
    ignore: Sequence[str] = DEFAULT_IGNORE,
) -> list[MetricRow]:
    """One row per metric of either run, sorted by name. ``same`` when ``|reproduced - saved| <= atol +
    rtol * |saved|`` (NaN matches NaN); names matching an ``ignore`` glob are ``ignored``."""
    rows = []
    for name in sorted({*saved, *reproduced}):
        before, after = saved.get(name), reproduced.get(name)
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in ignore):
            status = "ignored"
        elif after is None:
            status = "missing"
        elif before is None:
            status = "new"
        else:
            status = "same" if _close(float(before), float(after), atol, rtol) else "differs"
        rows.append(MetricRow(name, before, after, status))
    return rows


def reproduced_ok(rows: Sequence[MetricRow]) -> bool:
    """Every saved metric came back within tolerance (new metrics of today's code are fine)."""
    return not any(row.status in ("differs", "missing") for row in rows)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def comparison_table(rows: Sequence[MetricRow]) -> str:
    """The comparison as a Markdown table (ignored metrics left out)."""
    lines = ["| metric | saved | reproduced | difference | status |", "|---|---|---|---|---|"]
    for row in rows:
        if row.status != "ignored":
            cells = (
                row.name,
                _number(row.saved),
                _number(row.reproduced),
                _number(row.difference),
                row.status,
            )
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_line(rows: Sequence[MetricRow], what: str, atol: float, rtol: float) -> str:
    """``reproduced: <what> (12 same, 0 differs, 0 missing, 1 new; atol 1e-06, rtol 0)``."""
    counts = ", ".join(
        f"{sum(r.status == s for r in rows)} {s}" for s in ("same", "differs", "missing", "new")
    )
    verdict = "reproduced" if reproduced_ok(rows) else "NOT reproduced"
    return f"{verdict}: {what} ({counts}; atol {atol:g}, rtol {rtol:g})"


def default_output_dir(recipe: Recipe, cwd: Path) -> Path:
    """``<log_dir>/<run_name>/reproduce/<timestamp>``, beside the run family's other run directories."""
    log_dir = recipe.log_dir or cwd / "outputs"
    return log_dir / recipe.run_name / "reproduce" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def rerun(recipe: Recipe, output_dir: Path, extra_overrides: Sequence[str], cwd: Path) -> int:
    """Run the recipe through the real entry point in a fresh process; returns its exit status."""
    command = [
        sys.executable,
        "-m",
        "fashion_retrieval.cli",
        recipe.subcommand,
        *recipe.overrides,
        *extra_overrides,
        f"hydra.run.dir={output_dir}",
    ]
    log.info("reproduce: %s (in %s)", " ".join(command[3:]), cwd)
    return subprocess.run(command, cwd=cwd, check=False).returncode


def write_comparison(
    output_dir: Path, header: str, table: str, changes: Sequence[tuple[str, Any, Any]], record: dict[str, Any]
) -> None:
    """``reproduce.md`` (summary, warnings, metric table, config differences) and ``reproduce.json``."""
    with atomic_open(output_dir / COMPARISON_MD, "w") as handle:
        handle.write(f"# Reproduction of {record['source']}\n\n{header}\n{table}\n")
        if changes:
            handle.write(
                "\n## Config values that differ (run -> rerun)\n\n| key | run | rerun |\n|---|---|---|\n"
            )
            handle.writelines(f"| {key} | {before} | {after} |\n" for key, before, after in changes)
    write_json(output_dir / COMPARISON_JSON, record)


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fashion-retrieval reproduce",
        description="Rerun a past run from its provenance.json and compare metrics.json within a tolerance. "
        "Exit status 0: every saved metric reproduced; 1: some differ or are missing; 2: the rerun failed "
        "or the run directory cannot be reproduced.",
    )
    parser.add_argument("run_dir", type=Path, help="the run directory to reproduce")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for the rerun (key=value)")
    parser.add_argument("--output-dir", type=Path, default=None, help="the new run directory")
    parser.add_argument("--atol", type=float, default=1e-6, help="absolute tolerance (default 1e-6)")
    parser.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (default 0)")
    parser.add_argument(
        "--ignore",
        action="append",
        default=None,
        help=f"glob of metric names not compared, repeatable (default {' '.join(DEFAULT_IGNORE)})",
    )
    return parser.parse_intermixed_args(list(argv))


def reproduce(argv: Sequence[str], subcommands: Sequence[str]) -> int:
    """``fashion-retrieval reproduce RUN_DIR [overrides] [--output-dir D] [--atol A] [--rtol R]``; returns
    the exit status."""
    arguments = parse_arguments(argv)
    run_dir = arguments.run_dir.resolve()
    try:
        recipe = read_recipe(run_dir, subcommands)
    except (ReproduceError, OSError, ValueError) as error:
        print(f"fashion-retrieval reproduce: {error}", file=sys.stderr)
        return 2
    saved_metrics = read_metrics(run_dir)
    if not saved_metrics:
        print(f"fashion-retrieval reproduce: {run_dir / METRICS_FILE} is missing or empty", file=sys.stderr)
        return 2

    import fashion_retrieval

    warnings = git_warnings(recipe.git, git_state(fashion_retrieval.__file__))
    cwd = Path.cwd()
    if recipe.root_dir is not None and recipe.root_dir.is_dir():
        cwd = recipe.root_dir
    elif recipe.root_dir is not None:
        warnings.append(f"the run was launched from {recipe.root_dir}, which is gone: rerunning from {cwd}")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)

    output_dir = (arguments.output_dir or default_output_dir(recipe, cwd)).resolve()
    status = rerun(recipe, output_dir, arguments.overrides, cwd)
    if status != 0:
        print(
            f"fashion-retrieval reproduce: the rerun failed (exit status {status}); see {output_dir}",
            file=sys.stderr,
        )
        return 2

    rows = compare_metrics(
        saved_metrics,
        read_metrics(output_dir),
        atol=arguments.atol,
        rtol=arguments.rtol,
        ignore=arguments.ignore if arguments.ignore is not None else DEFAULT_IGNORE,
    )
    ok = reproduced_ok(rows)
    changes = config_changes(read_config(run_dir), read_config(output_dir))
    if changes:
        print(
            f"warning: {len(changes)} config value(s) of the rerun differ from the run's ({COMPARISON_MD})",
            file=sys.stderr,
        )
    summary = summary_line(rows, f"{run_dir} -> {output_dir}", arguments.atol, arguments.rtol)
    table = comparison_table(rows)
    record = {
        "source": str(run_dir),
        "command": ["fashion-retrieval", recipe.subcommand, *recipe.overrides, *arguments.overrides],
        "reproduced": ok,
        "atol": arguments.atol,
        "rtol": arguments.rtol,
        "warnings": warnings,
        "config_changes": [{"key": k, "run": b, "rerun": a} for k, b, a in changes],
        "metrics": [asdict(row) for row in rows],
    }
    notes = "".join(f"- warning: {w}\n" for w in warnings)
    write_comparison(output_dir, f"{summary}\n\n{notes}", table, changes, record)
    print(f"{table}\n\n{summary}")
    return 0 if ok else 1
