"""Names renamed by issue 16 (docs/configs.md "Renamed by issue 16"), in one place, below every package that
reads files or overrides written before the rename.

The command line refuses an old config name with the new one (Hydra alone would suggest ``+head=...``, which
adds a key nothing reads); ``reproduce`` translates the old names a past run's provenance recorded, so a run
made before the rename still reruns; the Retriever reads a run directory's recorded ``data:`` section through
:func:`renamed_section_keys`, and a head or checkpoint saved before the rename loads through
:func:`upgrade_state_keys`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

# Old key (a config group, or a section's key prefix) -> new key.
RENAMED_KEYS = {
    "head": "adapter",
    "dataset": "reader",
    "data.gallery_size": "data.catalogue_size",
    "adapter.module.gallery_head": "adapter.module.catalogue_head",
}
# Old state-dict key prefix (a module attribute) -> new prefix, for weights saved before the rename.
RENAMED_STATE_PREFIXES = {"gallery_head.": "catalogue_head."}
# Old `experiment=` option -> new option.
RENAMED_EXPERIMENTS = {
    "seed_convnext_triplet": "hackathon/convnext_triplet",
    "seed_fashionclip_infonce": "hackathon/fashionclip_infonce",
}


def _split(override: str) -> tuple[str, str, str | None]:
    """``override`` -> (prefix ``+``/``~``/``++``, key, value or ``None``)."""
    body = override.lstrip("+~")
    prefix = override[: len(override) - len(body)]
    key, has_value, value = body.partition("=")
    return prefix, key, value if has_value else None


def rename_key(key: str) -> str:
    """``head``, ``head.module.lr``, ``head/averaging@head.module.weight_averaging`` -> the new names."""
    for old, new in RENAMED_KEYS.items():
        if key == old:
            return new
        if key.startswith((f"{old}/", f"{old}.")):
            key = new + key[len(old) :]
        key = key.replace(f"@{old}.", f"@{new}.")
    return key


def rename_override(override: str) -> str:
    """One Hydra override with the old names replaced by the new ones (unchanged when it has none)."""
    prefix, key, value = _split(override)
    new_key = rename_key(key)
    if new_key == "experiment" and value is not None:
        value = RENAMED_EXPERIMENTS.get(value, value)
    return prefix + new_key + ("" if value is None else f"={value}")


def renamed_overrides(overrides: Sequence[str]) -> list[tuple[str, str]]:
    """The ``(old, new)`` pairs of ``overrides`` that use an old name; empty when none does."""
    pairs = [(override, rename_override(override)) for override in overrides]
    return [(old, new) for old, new in pairs if old != new]


def renamed_message(pairs: Sequence[tuple[str, str]]) -> str:
    """The command-line error for overrides that use old names."""
    lines = [f"  {old}  ->  {new}" for old, new in pairs]
    return "\n".join(
        ["renamed by issue 16 (docs/configs.md, 'Renamed by issue 16'); use the new names:", *lines]
    )


def renamed_section_keys(section: str) -> dict[str, str]:
    """The renamed keys directly inside config section ``section``: ``"data"`` -> ``{"gallery_size":
    "catalogue_size"}`` (what a run directory's recorded ``config_resolved.yaml`` may still say)."""
    prefix = f"{section}."
    return {
        old[len(prefix) :]: new[len(prefix) :]
        for old, new in RENAMED_KEYS.items()
        if old.startswith(prefix) and new.startswith(prefix) and "." not in old[len(prefix) :]
    }


Value = TypeVar("Value")


def upgrade_state_keys(state: Mapping[str, Value]) -> dict[str, Value]:
    """``state`` (a state dict) with the keys of attributes renamed since it was saved given their new names
    (``gallery_head.0.weight`` -> ``catalogue_head.0.weight``); a state dict of today is returned as is."""
    upgraded = {}
    for key, value in state.items():
        for old, new in RENAMED_STATE_PREFIXES.items():
            if key.startswith(old):
                key = new + key[len(old) :]
        upgraded[key] = value
    return upgraded
