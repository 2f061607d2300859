"""Start-up cost of the CLI: wall time of light commands and what they import.

    python benchmarks/startup.py --repeat 3
    python benchmarks/startup.py --repeat 5 --importtime --source /tmp/old-checkout --source .

Each command runs ``fashion-retrieval`` (``fashion_retrieval.cli.main``, what the console script calls) in a
fresh interpreter with a ``--source`` checkout first on ``PYTHONPATH``, ``--repeat`` times per source (the
sources taking turns, so a shared machine's changing load falls on each alike); the median wall time is
printed with the heavy packages the command imported (``sys.modules`` at exit, read by a wrapper around
``main``). ``--importtime`` also runs each command once under ``python -X importtime`` and prints the total
import time (the interpreter's own start-up imports left out) and that of the main packages. Commands that
run a stage write into a temporary directory (removed afterwards); ``evaluate`` reads the quickstart data
of ``--data-dir`` and a submission for it (read only). Prints a Markdown table for
``benchmarks/results/startup.md``; timings depend on the machine's load.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
HEAVY = ("pytorch_lightning", "lightning", "torchmetrics", "transformers", "torch", "timm", "ultralytics")
# Runs main() with the given arguments and reports the heavy top-level modules loaded, whatever the exit.
WRAPPER = (
    "import sys\n"
    "heavy = set(sys.argv.pop(1).split(','))\n"
    "try:\n"
    "    from fashion_retrieval.cli import main\n"
    "    main()\n"
    "finally:\n"
    "    loaded = sorted({m.split('.')[0] for m in sys.modules} & heavy)\n"
    "    print('HEAVY=' + ','.join(loaded), file=sys.stderr)\n"
)
# Packages whose cumulative import time is reported (each where it was first imported).
REPORTED = (*HEAVY, "hydra", "omegaconf", "numpy", "pandas", "cv2", "albumentations", "scipy", "matplotlib")
IMPORTTIME_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def commands(data_dir: Path, submission: Path, scratch: Path) -> dict[str, list[str]]:
    """Label -> ``fashion-retrieval`` arguments of each measured command (stages write below ``scratch``)."""
    empty_data = scratch / "empty_data"
    empty_data.mkdir(parents=True, exist_ok=True)
    (empty_data / "product_dataset.csv").write_text(
        "product_asset_id,product_image_url,product_description\n"
    )
    (empty_data / "bundles_dataset.csv").write_text("bundle_asset_id,bundle_id_section,bundle_image_url\n")
    report_dir = scratch / "report"
    report_dir.mkdir(exist_ok=True)
    (report_dir / "metrics.json").write_text('{"val/recall@15": 0.2}\n')
    data = f"paths.data_dir={data_dir}"
    return {
        "--help": ["--help"],
        "train --cfg job": ["train", "--cfg", "job"],
        # Made by an untimed first run (main), then found present: what is timed is the check.
        "generate (data present)": [
            "generate",
            "synthetic=tiny",
            f"paths.data_dir={scratch}/synthetic_tiny",
            f"hydra.run.dir={scratch}/generate",
        ],
        "evaluate": [
            "evaluate",
            data,
            f"evaluate.submission_path={submission}",
            f"hydra.run.dir={scratch}/evaluate",
        ],
        "report": ["report", f"hydra.run.dir={report_dir}"],
        "download (empty catalogue)": [
            "download",
            f"paths.data_dir={empty_data}",
            f"hydra.run.dir={scratch}/download",
        ],
    }


def run_once(arguments: Sequence[str], source: Path, cwd: Path) -> tuple[float, str, int]:
    """Wall seconds, heavy modules loaded and exit status of one command in a fresh interpreter."""
    environment = {**os.environ, "PYTHONPATH": str(source)}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", WRAPPER, ",".join(HEAVY), *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    heavy = next((line[6:] for line in result.stderr.splitlines() if line.startswith("HEAVY=")), "?")
    if result.returncode != 0:
        print(f"  exit status {result.returncode}:\n{result.stderr[-2000:]}", file=sys.stderr)
    return seconds, heavy, result.returncode


def interpreter_imports(source: Path, cwd: Path) -> set[str]:
    """Top-level modules every interpreter imports before running anything (``site``, ``encodings``, the
    editable install's finder, ...): left out of a command's import total, which they would only blur."""
    environment = {**os.environ, "PYTHONPATH": str(source)}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "pass"],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    return {m.group(4) for m in IMPORTTIME_LINE.finditer(result.stderr) if len(m.group(3)) == 1}


def import_times(arguments: Sequence[str], source: Path, cwd: Path) -> tuple[float, str]:
    """``-X importtime`` of one command: the total (cumulative time of its top-level imports, the
    interpreter's own left out) and the cumulative seconds of each package of :data:`REPORTED` it
    imported (where it was first imported)."""
    environment = {**os.environ, "PYTHONPATH": str(source)}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", WRAPPER, ",".join(HEAVY), *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    start_up = interpreter_imports(source, cwd)
    total, packages = 0.0, {}
    for match in IMPORTTIME_LINE.finditer(result.stderr):
        seconds, indent, name = int(match.group(2)) / 1e6, match.group(3), match.group(4)
        if len(indent) == 1 and name not in start_up:  # imported by the command, not nested
            total += seconds
        if name in REPORTED:
            packages[name] = seconds
    costliest = sorted(packages.items(), key=lambda item: -item[1])
    return total, ", ".join(f"{name} {seconds:.2f}" for name, seconds in costliest if seconds >= 0.01)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--source",
        type=Path,
        action="append",
        help="checkout whose package is measured (repeatable, runs alternate; default: this one)",
    )
    parser.add_argument("--data-dir", type=Path, default=REPOSITORY / "data" / "synthetic_quickstart")
    parser.add_argument(
        "--submission",
        type=Path,
        default=REPOSITORY / "outputs" / "quickstart" / "submission.csv",
        help="a submission for --data-dir's test bundles (evaluate)",
    )
    parser.add_argument("--importtime", action="store_true", help="also run each once under -X importtime")
    arguments = parser.parse_args(argv)
    sources = [source.resolve() for source in arguments.source or [REPOSITORY]]
    scratch = Path(tempfile.mkdtemp(prefix="startup_"))
    try:
        header = "| command | source | median wall s | runs (s) | heavy modules imported |"
        if arguments.importtime:
            header += " -X importtime total s | imported packages, cumulative s |"
        print(header + "\n" + "|---" * header.count(" |") + "|", flush=True)
        measured = commands(arguments.data_dir.resolve(), arguments.submission.resolve(), scratch)
        for source in sources:
            run_once(measured["generate (data present)"], source, scratch)
        for label, command in measured.items():
            # Alternate between the sources, so a change in the machine's load falls on all of them.
            runs: dict[Path, list[tuple[float, str, int]]] = {source: [] for source in sources}
            for _ in range(arguments.repeat):
                for source in sources:
                    runs[source].append(run_once(command, source, scratch))
            for source, results in runs.items():
                row = (
                    f"| `{label}` | {source} | {statistics.median(r[0] for r in results):.2f} | "
                    f"{' '.join(f'{r[0]:.2f}' for r in results)} | {results[-1][1] or 'none'} |"
                )
                if any(r[2] != 0 for r in results):
                    row += " (failed)"
                if arguments.importtime:
                    total, packages = import_times(command, source, scratch)
                    row += f" {total:.2f} | {packages} |"
                print(row, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
