"""One writer per directory: a second writer is refused naming the holder, a dead holder's lock is taken
over, cache writers wait, and two runs in one run directory cannot both write it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fashion_retrieval.locks import LOCK_FILE, DirectoryLockedError, directory_lock
from fashion_retrieval.runs.stages import run_stages

HOLD = """
import sys, time
from fashion_retrieval.locks import directory_lock
with directory_lock(sys.argv[1], "test holder"):
    print("locked", flush=True)
    time.sleep(600)
"""


def start_holder(directory: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    return process


def test_a_second_writer_is_refused_naming_the_directory_and_the_holder(tmp_path) -> None:
    holder = start_holder(tmp_path)
    try:
        with pytest.raises(DirectoryLockedError) as refused, directory_lock(tmp_path, "second"):
            pytest.fail("the second writer got the lock")
        message = str(refused.value)
        assert str(tmp_path) in message
        assert f"pid {holder.pid} on {socket.gethostname()}" in message and "test holder" in message
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path) -> None:
    holder = start_holder(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    # Its lock file stays, naming it; the lock itself went with the process.
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == holder.pid
    with directory_lock(tmp_path, "next run"):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_two_lock_attempts_in_one_process_conflict_until_the_first_is_released(tmp_path) -> None:
    with (
        directory_lock(tmp_path, "first"),
        pytest.raises(DirectoryLockedError, match="first"),
        directory_lock(tmp_path, "second"),
    ):
        pytest.fail("the second attempt got the lock")
    with directory_lock(tmp_path, "second"):
        pass


def test_a_waiting_writer_gets_the_lock_once_the_holder_releases_it(tmp_path) -> None:
    order: list[str] = []
    released = threading.Event()

    def hold() -> None:
        with directory_lock(tmp_path, "cache writer"):
            order.append("first in")
            released.wait(timeout=30)
            order.append("first out")

    thread = threading.Thread(target=hold)
    thread.start()
    while not order:
        time.sleep(0.01)
    threading.Timer(0.2, released.set).start()
    with directory_lock(tmp_path, "second writer", wait=True):
        order.append("second in")
    thread.join()
    assert order == ["first in", "first out", "second in"]


def test_run_stages_refuses_a_run_directory_another_run_is_writing(tmp_path) -> None:
    cfg = OmegaConf.create({"paths": {"output_dir": str(tmp_path)}, "stages": []})
    holder = start_holder(tmp_path)
    try:
        with pytest.raises(DirectoryLockedError, match=str(holder.pid)):
            run_stages(cfg, ["report"])
        assert not (tmp_path / "config_resolved.yaml").exists(), "the refused run wrote nothing"
    finally:
        holder.kill()
        holder.wait()
