"""``fashion-retrieval <subcommand> [hydra overrides]``: thin dispatch to the pipelines.

Every subcommand composes the same ``conf/`` tree (primary config ``config.yaml``) and accepts any
Hydra override or flag (``experiment=quickstart``, ``-m``, ``hydra.run.dir=...``, ``--cfg job``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import fashion_retrieval  # noqa: F401 - sets the offline defaults before any ML library is imported

SUBCOMMANDS = {
    "download": "fetch the catalogue's image URLs into paths.data_dir/images (the real challenge data)",
    "generate": "make the synthetic dataset in paths.data_dir",
    "train": "fit + validate (Recall@15) + export catalogue embeddings and FAISS index",
    "baselines": "score random, colour-histogram and pretrained-backbone retrieval on validation",
    "detect-train": "train the YOLO garment detector on the synthetic boxes; writes detector/best.pt",
    "train-adapter": "train head= on cached frozen-backbone crop features, score the validation bundles",
    "wise-ft": "interpolate ckpt_path's backbone with its pretrained weights (wise_ft.alpha); new checkpoint",
    "index": "embed the catalogue with ckpt_path and build the FAISS index",
    "validate": "score the validation bundles with ckpt_path through detector=none|zones|yolo|truth",
    "infer": "write submission.csv for the test bundles with ckpt_path",
    "export-onnx": "write ckpt_path's encoder as ONNX (+ JSON sidecar) after a parity check against PyTorch",
    "self-train": "infer with bundle priors fed back their confident test predictions (self_train.passes)",
    "evaluate": "validate and score a submission against a truth file",
    "retrieval-eval": "precision@k, MAP@R by class on dataset=... (ckpt_path, or the pretrained backbone)",
    "generate-collage": "write the real-photo collage set (clothing-dataset-small) to paths.data_dir",
    "report": "the results table of a run directory, or one row per run below a sweep folder",
    "run": "the stages listed in `stages` (an experiment's recipe), in order, in one run directory",
    "reproduce": "rerun a past run directory from its provenance and compare the metrics (not Hydra: --help)",
}


# Lightning's DDP launcher starts the other ranks by re-running ``sys.argv`` with Hydra overrides appended;
# the subcommand travels to them in the environment (see ``main``).
SUBCOMMAND_ENV = "FASHION_RETRIEVAL_SUBCOMMAND"


def config_dir() -> Path:
    """The configs: ``fashion_retrieval/conf`` is a link to the repository's ``conf/`` and a real folder
    inside wheels, so they are found from any working directory, editable install or not."""
    return Path(__file__).parent / "conf"


def usage() -> str:
    lines = ["usage: fashion-retrieval <subcommand> [key=value ...] [hydra flags]", "", "subcommands:"]
    lines += [f"  {name:<12} {text}" for name, text in SUBCOMMANDS.items()]
    lines += [
        "",
        "examples:",
        "  fashion-retrieval run experiment=quickstart",
        "  fashion-retrieval train --cfg job",
    ]
    return "\n".join(lines)


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


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    relaunched_rank = argv[0] not in SUBCOMMANDS and os.environ.get(SUBCOMMAND_ENV) in SUBCOMMANDS
    if relaunched_rank:  # a DDP rank started by Lightning: it names its own job (train_ddp_process_N)
        subcommand, overrides = os.environ[SUBCOMMAND_ENV], argv
    else:
        subcommand, overrides = argv[0], with_job_name(argv[1:], argv[0])
    if subcommand not in SUBCOMMANDS:
        print(f"fashion-retrieval: unknown subcommand {subcommand!r}\n\n{usage()}", file=sys.stderr)
        raise SystemExit(2)
    if subcommand == "reproduce":  # its own arguments (a run directory), and it launches Hydra runs itself
        from fashion_retrieval.pipelines.reproduce import reproduce

        raise SystemExit(reproduce(argv[1:], subcommands=list(SUBCOMMANDS)))

    import hydra

    from fashion_retrieval.pipelines.job import StageTask

    # Hydra reads sys.argv; the job name (and so the run directory) is the subcommand. argv[0] must be a
    # runnable file: Lightning's DDP launcher re-runs `python argv[0] argv[1:]` for the other ranks.
    os.environ[SUBCOMMAND_ENV] = subcommand
    sys.argv = [str(Path(__file__).resolve()), *overrides]
    task = StageTask(subcommand)  # picklable: joblib and submitit send it to other processes
    hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")(task)()


if __name__ == "__main__":
    main()
