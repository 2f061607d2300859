"""The command line: Hydra flags and overrides in any order, the job named after the subcommand; grouped
help, version, did-you-mean, shell completion; light commands that import no Lightning."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fashion_retrieval.cli import SUBCOMMANDS, main, with_job_name
from fashion_retrieval.pipelines.registry import COMMANDS, GROUPS, STAGES, TORCH_FREE_STAGES


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ([], ["hydra.job.name=train"]),
        (["seed=3"], ["hydra.job.name=train", "seed=3"]),
        (["--cfg", "job", "seed=3"], ["--cfg", "job", "hydra.job.name=train", "seed=3"]),
        (["seed=3", "--cfg", "job"], ["hydra.job.name=train", "seed=3", "--cfg", "job"]),
        (["-m", "--config-dir=/x", "a=1,2"], ["-m", "--config-dir=/x", "hydra.job.name=train", "a=1,2"]),
    ],
)
def test_job_name_joins_the_run_of_overrides(arguments: list[str], expected: list[str]) -> None:
    assert with_job_name(arguments, "train") == expected


@pytest.mark.parametrize("order", ["flag_first", "flag_last"])
def test_print_config_with_flag_before_or_after_overrides(order: str) -> None:
    overrides, flag = ["experiment=hardneg/mined_balanced", "seed=7"], ["--cfg", "job"]
    arguments = [*flag, *overrides] if order == "flag_first" else [*overrides, *flag]
    result = subprocess.run(
        [sys.executable, "-m", "fashion_retrieval.cli", "train", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "run_name: hardneg/mined_balanced" in result.stdout
    assert "seed: 7" in result.stdout


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fashion_retrieval.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_malformed_submission_prints_its_problems_without_a_traceback(tmp_path: Path) -> None:
    from tests.data.test_catalogue import write_dataset

    root = write_dataset(tmp_path / "data")
    (root / "truth.csv").write_text("bundle_asset_id,product_asset_id\nB_00000000000c,I_000000000001\n")
    submission = tmp_path / "submission.csv"
    submission.write_text("bundle_asset_id,product_asset_id\nB_00000000000c,I_00000000dead\n")
    result = run_cli(
        "evaluate",
        f"paths.data_dir={root}",
        f"evaluate.submission_path={submission}",
        f"evaluate.truth_path={root / 'truth.csv'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        "logger=none",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "fashion-retrieval evaluate: submission" in result.stderr
    assert "without exactly 15 rows" in result.stderr and "I_00000000dead" in result.stderr


def test_a_trainer_value_of_the_wrong_type_is_named_before_anything_runs(tmp_path: Path) -> None:
    result = run_cli("train", "trainer.max_epochs=abc", f"hydra.run.dir={tmp_path / 'run'}", "logger=none")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "trainer.max_epochs: expected an integer, got 'abc' (str)" in result.stderr


# --- the command line itself: help, version, did-you-mean, shell completion ---------------------------------


def test_help_lists_every_subcommand_once_under_its_group(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--help"])
    text = capsys.readouterr().out
    headings = [line[:-1] for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert headings[: len(GROUPS)] == list(GROUPS)
    entries = (*STAGES, *COMMANDS)
    listed = [line.split()[0] for line in text.splitlines() if line.startswith("  ") and line.split()]
    assert sorted(name for name in listed if name in SUBCOMMANDS) == sorted(e.command for e in entries)
    for entry in entries:
        section = text.split(f"\n{entry.group}:\n", 1)[1].split("\n\n", 1)[0]
        assert f"  {entry.command} " in section, (entry.command, entry.group)
    # One column: every help text starts at the same position, even after the longest name.
    columns = {
        line.index(entry.help) for line in text.splitlines() for entry in entries if entry.help in line
    }
    assert len(columns) == 1 and columns.pop() > max(len(name) for name in SUBCOMMANDS) + 2


def test_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--version"])
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE).group(1)
    assert capsys.readouterr().out == f"fashion-retrieval {version}\n"


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("trian", "did you mean 'train' or 'pretrain'?"),
        ("detect_train", "did you mean 'detect-train'"),
        ("reproduse", "did you mean 'reproduce'?"),
        ("experiment=tiny", "the subcommand comes first"),
        ("xyzzy", "run `fashion-retrieval --help` for the list"),
    ],
)
def test_a_mistyped_subcommand_exits_2_with_a_suggestion(
    word: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([word, "seed=1"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith(f"fashion-retrieval: unknown subcommand {word!r}; ") and expected in error


def test_an_old_config_name_exits_2_naming_the_new_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "train-adapter",
                "head=residual_adapter",
                "dataset.root=/x",
                "experiment=seed_convnext_triplet",
                "data.gallery_size=[64,48]",
                "adapter.module.gallery_head=null",
                "head.module.gallery_head=null",
            ]
        )
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "head=residual_adapter  ->  adapter=residual_adapter" in error
    assert "dataset.root=/x  ->  reader.root=/x" in error
    assert "experiment=seed_convnext_triplet  ->  experiment=hackathon/convnext_triplet" in error
    assert "data.gallery_size=[64,48]  ->  data.catalogue_size=[64,48]" in error
    assert "adapter.module.gallery_head=null  ->  adapter.module.catalogue_head=null" in error
    assert "head.module.gallery_head=null  ->  adapter.module.catalogue_head=null" in error


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("fashion-retrieval ", set(SUBCOMMANDS)),
        ("fashion-retrieval tr", {"train", "train-adapter", "train-text", "train-fusion"}),
        ("fashion-retrieval re", {"retrieval-eval", "report", "reproduce"}),
        ("fashion-retrieval reproduce ", set()),  # a run directory: the shell completes file names
    ],
)
def test_completion_of_the_subcommand_word(
    line: str, expected: set[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMP_LINE", line)
    main(["-sc", "query=bash"])
    assert set(capsys.readouterr().out.split()) == expected


def test_bash_completion_through_the_entry_point(tmp_path: Path) -> None:
    """Hydra's script, installed as its help says (``eval "$(fashion-retrieval -sc install=bash)"``),
    completes subcommands, then config groups and keys of the subcommand's config, in a real bash."""
    bash, program = shutil.which("bash"), shutil.which("fashion-retrieval")
    if bash is None or program is None:
        pytest.skip("needs bash and the fashion-retrieval console script on PATH")

    def complete(line: str) -> list[str]:
        words = line.split()
        current = len(words) - (0 if line.endswith(" ") else 1)
        script = (
            'eval "$(fashion-retrieval -sc install=bash)"\n'
            f"COMP_LINE={shlex.quote(line)} COMP_POINT={len(line)} COMP_CWORD={current}\n"
            'hydra_bash_completion\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
        )
        result = subprocess.run(
            [bash, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path, check=True
        )
        return result.stdout.split()

    assert complete("fashion-retrieval detect-t") == ["detect-train"]
    assert "model=efficientnet_lite0" in complete("fashion-retrieval train model=")
    assert complete("fashion-retrieval train trainer.max_ep") == ["trainer.max_epochs="]


# --- start-up: light commands import no Lightning, torchmetrics or transformers -----------------------------

HEAVY = ("pytorch_lightning", "lightning", "torchmetrics", "transformers")
# Runs main() and prints the top-level modules loaded, whatever the exit (a stage may fail on purpose).
WRAPPER = (
    "import sys\n"
    "try:\n"
    "    from fashion_retrieval.cli import main\n"
    "    main()\n"
    "finally:\n"
    "    print('MODULES=' + ','.join(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)\n"
)


def loaded_modules(*arguments: str, cwd: Path) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    result = subprocess.run(
        [sys.executable, "-c", WRAPPER, *arguments], capture_output=True, text=True, timeout=300, cwd=cwd
    )
    line = next((x for x in result.stderr.splitlines() if x.startswith("MODULES=")), None)
    assert line is not None, result.stderr[-3000:]
    return set(line[len("MODULES=") :].split(",")), result


def light_commands(data_dir: Path, tmp_path: Path) -> dict[str, list[str]]:
    """A real invocation of each torch-free stage of the registry, plus the commands that run no stage."""
    empty = tmp_path / "empty_catalogue"
    empty.mkdir()
    (empty / "product_dataset.csv").write_text("product_asset_id,product_image_url,product_description\n")
    (empty / "bundles_dataset.csv").write_text("bundle_asset_id,bundle_id_section,bundle_image_url\n")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "metrics.json").write_text('{"val/recall@15": 0.25}\n')
    data = f"paths.data_dir={data_dir}"
    per_stage = {
        "generate": ["experiment=tiny", data],  # the data is there: checked and reused
        "evaluate": [data, f"evaluate.submission_path={data_dir / 'bundles_product_match_test_truth.csv'}"],
        "report": [f"hydra.run.dir={tmp_path / 'report'}"],
        "download": [f"paths.data_dir={empty}"],
    }
    assert set(per_stage) == TORCH_FREE_STAGES, "give each torch-free stage of the registry a command here"
    commands = {"--help": ["--help"], "--version": ["--version"], "--cfg job": ["train", "--cfg", "job"]}
    for name, arguments in per_stage.items():
        run_dir = [] if name == "report" else [f"hydra.run.dir={tmp_path / name}"]
        commands[name] = [name, *arguments, *run_dir, "logger=none"]
    return commands


def test_light_commands_import_no_lightning_torchmetrics_or_transformers(
    tiny_data: Path, tmp_path: Path
) -> None:
    for label, arguments in light_commands(tiny_data, tmp_path).items():
        modules, result = loaded_modules(*arguments, cwd=tmp_path)
        assert not modules & set(HEAVY), (label, sorted(modules & set(HEAVY)))
        if label != "evaluate":  # the truth file is not a valid submission: its problems are listed
            assert result.returncode == 0, (label, result.stderr[-3000:])
        # torch itself only where a stage needs it: none of these does.
        assert "torch" not in modules, label
    assert (tmp_path / "report" / "results.md").is_file()
