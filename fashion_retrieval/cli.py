"""``fashion-retrieval <subcommand> [hydra overrides]``: thin dispatch to the stages and the run machinery.

Every subcommand but ``reproduce`` composes the same ``conf/`` tree (primary config ``config.yaml``) and
accepts any Hydra override or flag (``experiment=quickstart``, ``-m``, ``hydra.run.dir=...``, ``--cfg
job``). The subcommands come from the stage registry (:mod:`fashion_retrieval.pipelines.registry`). This
module imports neither torch nor Lightning: ``--help``, ``--version`` and ``--cfg job`` answer at once, and
each stage pays for its own imports when it runs (docs/cli.md).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import fashion_retrieval  # sets the offline defaults before any ML library is imported
from fashion_retrieval.pipelines.registry import COMMANDS, GROUPS, STAGES, subcommands
from fashion_retrieval.renamed import renamed_message, renamed_overrides

PROGRAM = "fashion-retrieval"
SUBCOMMANDS = subcommands()

# Lightning's DDP launcher starts the other ranks by re-running ``sys.argv`` with Hydra overrides appended;
# the subcommand travels to them in the environment (see ``main``).
SUBCOMMAND_ENV = "FASHION_RETRIEVAL_SUBCOMMAND"
# Hydra's shell completion (``-sc install=bash``): the shell calls ``<program> -sc query=bash`` with the
# line being completed in this variable.
COMPLETION_LINE_ENV = "COMP_LINE"


def config_dir() -> Path:
    """The configs: ``fashion_retrieval/conf`` is a link to the repository's ``conf/`` and a real folder
    inside wheels, so they are found from any working directory, editable install or not."""
    return Path(__file__).parent / "conf"


def usage() -> str:
    """``--help``: the subcommands grouped as in the registry, their help in one aligned column."""
    width = max(len(name) for name in SUBCOMMANDS) + 2
    lines = [
        f"usage: {PROGRAM} <subcommand> [key=value ...] [hydra flags]",
        f"       {PROGRAM} --help | --version | -sc install=bash",
    ]
    for group in GROUPS:
        lines += ["", f"{group}:"]
        lines += [
            f"  {entry.command:<{width}}{entry.help}"
            for entry in (*STAGES, *COMMANDS)
            if entry.group == group
        ]
    lines += [
        "",
        "examples:",
        f"  {PROGRAM} run experiment=quickstart    # the quickstart recipe: its stages, one run directory",
        f"  {PROGRAM} train --cfg job              # print the composed config, run nothing",
        f"  {PROGRAM} train --help                 # Hydra's help: config groups and flags",
        f"  {PROGRAM} reproduce --help",
        "",
        "docs/cli.md: commands, shell completion, start-up cost.",
    ]
    return "\n".join(lines)


def unknown_subcommand(word: str) -> str:
    """The error for a word that is no subcommand, with the closest names (``difflib``) when any."""
    import difflib  # only on this error path: --help and every run do without it

    spelled = word.replace("_", "-")
    close = difflib.get_close_matches(spelled, SUBCOMMANDS, n=3, cutoff=0.6)
    if "=" in word or word.startswith("-"):
        hint = f"the subcommand comes first: {PROGRAM} <subcommand> {word} ..."
    elif close:
        hint = "did you mean " + " or ".join(repr(name) for name in close) + "?"
    else:
        hint = f"run `{PROGRAM} --help` for the list"
    return f"{PROGRAM}: unknown subcommand {word!r}; {hint}"


def with_job_name(arguments: list[str], job_name: str) -> list[str]:
    """Add ``hydra.job.name=<job_name>`` next to the user's overrides.

    Hydra's argument parser takes overrides as one run of positionals, so the extra override goes just
    before the first user override (after flags such as ``--cfg job``), or at the end when there is none.
    """
    job_override = f"hydra.job.name={job_name}"
    for position, argument in enumerate(arguments):
        if "=" in argument and not argument.startswith("-"):
            return [*arguments[:position], job_override, *arguments[position:]]
    return [*arguments, job_override]


def completion_subcommand(argv: list[str]) -> str | None:
    """Shell completion through our entry point (``argv``: ``-sc install=bash``, ``-sc query=bash``): the
    subcommand whose config Hydra completes; ``None`` when answered here (or left to the shell).

    Install and uninstall print Hydra's script (any subcommand's config will do). A query completing the
    subcommand word prints the matching names. Otherwise the subcommand word is taken out of
    ``COMP_LINE``, so Hydra sees ``<program> <overrides>`` as for a plain Hydra app and completes config
    groups, options and keys.
    """
    if len(argv) < 2 or not argv[1].startswith("query="):
        return "train"
    line = os.environ.get(COMPLETION_LINE_ENV, "")
    words, new_word = line.split(), line.endswith(" ")
    if len(words) < 2 or (len(words) == 2 and not new_word):
        prefix = words[1] if len(words) == 2 else ""
        print(" ".join(name for name in SUBCOMMANDS if name.startswith(prefix)))
        return None
    if words[1] == "reproduce" or words[1] not in SUBCOMMANDS:
        return None  # no config to complete against: the shell falls back to file names (`-o default`)
    os.environ[COMPLETION_LINE_ENV] = " ".join([words[0], *words[2:]]) + (" " if new_word else "")
    return words[1]


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    if argv[0] in ("-V", "--version"):
        print(f"{PROGRAM} {fashion_retrieval.__version__}")
        return
    completing = argv[0] in ("-sc", "--shell-completion")
    relaunched_rank = argv[0] not in SUBCOMMANDS and os.environ.get(SUBCOMMAND_ENV) in SUBCOMMANDS
    if completing:
        completed = completion_subcommand(argv)
        if completed is None:
            return
        subcommand, overrides = completed, argv
    elif relaunched_rank:  # a DDP rank started by Lightning: it names its own job (train_ddp_process_N)
        subcommand, overrides = os.environ[SUBCOMMAND_ENV], argv
    else:
        subcommand, overrides = argv[0], with_job_name(argv[1:], argv[0])
    if subcommand not in SUBCOMMANDS:
        print(unknown_subcommand(subcommand), file=sys.stderr)
        raise SystemExit(2)
    if subcommand != "reproduce" and (renamed := renamed_overrides(overrides)):
        print(f"{PROGRAM}: {renamed_message(renamed)}", file=sys.stderr)
        raise SystemExit(2)
    if subcommand == "reproduce":  # its own arguments (a run directory), and it launches Hydra runs itself
        from fashion_retrieval.runs.reproduce import reproduce

        raise SystemExit(reproduce(argv[1:], subcommands=list(SUBCOMMANDS)))

    import hydra

    from fashion_retrieval.runs.job import StageTask

    # Hydra reads sys.argv; the job name (and so the run directory) is the subcommand. argv[0] must be a
    # runnable file: Lightning's DDP launcher re-runs `python argv[0] argv[1:]` for the other ranks. Shell
    # completion instead names the program the shell completes (Hydra reads it from argv[0]).
    program = Path(sys.argv[0]).name if completing else str(Path(__file__).resolve())
    os.environ[SUBCOMMAND_ENV] = subcommand
    sys.argv = [program, *overrides]
    task = StageTask(subcommand)  # picklable: joblib and submitit send it to other processes
    hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")(task)()


if __name__ == "__main__":
    main()
