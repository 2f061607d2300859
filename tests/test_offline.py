"""Nothing may wait for a network: the package switches every library to offline mode."""

from __future__ import annotations

import os
import subprocess
import sys


def run_python(code: str) -> str:
    unset = ("HF_HUB_OFFLINE", "YOLO_OFFLINE", "ULTRALYTICS_SAFE_LOAD")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_offline_defaults_are_set_on_import():
    out = run_python(
        "import os, fashion_retrieval; "
        "print(*(os.environ[k] for k in "
        "('HF_HUB_OFFLINE', 'YOLO_OFFLINE', 'NO_ALBUMENTATIONS_UPDATE', 'ULTRALYTICS_SAFE_LOAD')))"
    )
    assert out == "1 1 1 1"


def test_hub_is_offline_even_when_imported_before_the_package():
    out = run_python(
        "import huggingface_hub.constants as c; import fashion_retrieval; print(c.HF_HUB_OFFLINE)"
    )
    assert out == "True"


def test_user_choice_wins():
    env = {**os.environ, "HF_HUB_OFFLINE": "0"}
    code = "import os, fashion_retrieval; print(os.environ['HF_HUB_OFFLINE'])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.stdout.strip() == "0"
