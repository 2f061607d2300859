"""The notebooks run top to bottom on the tiny synthetic dataset and the tiny run of ``tiny_run``
(``conftest.py``), and are committed without outputs."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import nbclient
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
KERNEL = "fashion-retrieval-tests"
CELL_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernel spec naming this interpreter, so the notebooks run in the environment under test whatever
    kernels the machine has registered (a fresh CI venv registers none)."""
    folder = tmp_path_factory.mktemp("kernels")
    (folder / KERNEL).mkdir()
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "fashion-retrieval tests",
        "language": "python",
    }
    (folder / KERNEL / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(folder)])


@pytest.fixture
def run_notebook(
    kernel_specs: KernelSpecManager, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[..., nbformat.NotebookNode]:
    def run(name: str, **env: str) -> nbformat.NotebookNode:
        """Execute ``notebooks/<name>`` from the repository root with ``env`` set; returns it executed."""
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        # The kernel's connection file goes to a temporary folder, not the user's Jupyter runtime folder.
        monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter_runtime"))
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        manager = KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_specs)
        client = nbclient.NotebookClient(
            notebook, km=manager, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(REPO)}}
        )
        return client.execute()

    return run


def outputs_text(notebook: nbformat.NotebookNode) -> str:
    """Everything the code cells printed or displayed as text."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def image_count(notebook: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for c in notebook.cells for o in c.get("outputs", []))


def test_every_notebook_is_tested_and_committed_without_outputs() -> None:
    names = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["01_catalogue_exploration.ipynb", "02_results_exploration.ipynb"]
    for name in names:
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(notebook)
        tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{name}: one cell tagged 'parameters' (papermill's convention)"
        for number, cell in enumerate(notebook.cells, start=1):
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, (
                    f"{name}: cell {number} holds outputs; strip them with `make strip-notebooks`"
                )


def test_catalogue_notebook_runs_on_the_tiny_dataset(tiny_run, run_notebook) -> None:
    workdir, _, _ = tiny_run
    data_dir = workdir / "data/synthetic_tiny"
    notebook = run_notebook("01_catalogue_exploration.ipynb", FR_DATA_DIR=str(data_dir))
    text = outputs_text(notebook)
    assert str(data_dir) in text
    assert "boxes in" in text and "per bundle" in text, "the box statistics ran"
    assert image_count(notebook) >= 6  # skew, popularity, products per bundle, samples x2, boxes x2


def test_results_notebook_runs_on_the_tiny_run(tiny_run, run_notebook) -> None:
    _, run_dir, _ = tiny_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    notebook = run_notebook("02_results_exploration.ipynb", FR_RUN_DIR=str(run_dir), FR_NUM_QUERIES="2")
    text = outputs_text(notebook)
    # The notebook's own scoring of the submission agrees with the run's (it also asserts the scorer's).
    assert f"recall@15 = {metrics['test/recall@15']:.4f}" in text
    assert "truth pairs missed" in text
    assert image_count(notebook) >= 4  # curve, categories, retrieval grid, failure grid
