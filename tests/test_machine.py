"""The machine rule for DataLoader workers and torch threads, its config resolver and its overrides."""

from __future__ import annotations

import pytest
import torch
from test_configs import compose_config

from fashion_retrieval import machine
from fashion_retrieval.machine import DataPath, cgroup_cpu_limit, cpu_step_time, data_path_rule, processes_of


def brute_force_workers(cores: int, ratio: float) -> int:
    """The reference: simulate ``steps`` steps of a pipelined loader (w workers, each on a core, feeding a
    model on the other cores) against the serial loop, and take the fastest, fewest workers first."""
    steps, best, best_time = 1000, 0, None
    for workers in range(min(cores - 1, machine.MAX_WORKERS) + 1):
        if workers == 0:
            total = steps * (ratio + 1.0 / cores)
        else:
            ready, done = 0.0, 0.0
            for step in range(steps):
                ready = (step // workers + 1) * ratio  # each worker loads one batch per `ratio`
                done = max(done, ready) + 1.0 / (cores - workers)
            total = done
        if best_time is None or total < best_time * (1 - 1e-9):
            best, best_time = workers, total
    return best


@pytest.mark.parametrize("cores", [1, 2, 3, 4, 5, 6, 8, 16, 64])
@pytest.mark.parametrize("stage", ["train", "embed"])
def test_cpu_workers_are_those_of_the_fastest_simulated_pipeline(cores, stage):
    rule = data_path_rule(cores, "cpu", stage)
    assert rule.workers == brute_force_workers(cores, machine.LOAD_PER_COMPUTE[stage])
    assert rule.threads == max(1, cores - rule.workers)


def test_this_2_core_machine_keeps_no_workers_and_two_threads():
    # The measured case (benchmarks/results/data_path.md): a worker costs throughput on 2 cores, and 2 is
    # what torch picks by itself here, so a deterministic run reproduces.
    assert data_path_rule(2, "cpu", "train") == DataPath(workers=0, threads=2)
    assert data_path_rule(2, "cpu", "embed") == DataPath(workers=0, threads=2)


def test_step_time_model():
    assert cpu_step_time(4, 0, 0.2) == pytest.approx(0.2 + 0.25)
    assert cpu_step_time(4, 1, 0.2) == pytest.approx(1 / 3)  # compute-bound: the loader keeps up
    assert cpu_step_time(4, 2, 1.2) == pytest.approx(0.6)  # load-bound


def test_devices_load_with_every_core_but_one_and_processes_share_the_cores():
    assert data_path_rule(16, "gpu", "train") == DataPath(workers=8, threads=8)
    assert data_path_rule(2, "gpu", "embed") == DataPath(workers=1, threads=1)
    assert data_path_rule(1, "gpu", "train") == DataPath(workers=0, threads=1)
    assert data_path_rule(16, "gpu", "train", processes=4) == DataPath(workers=3, threads=1)
    assert data_path_rule(2, "cpu", "train", processes=2) == DataPath(workers=0, threads=1)
    with pytest.raises(ValueError, match="stage kind"):
        data_path_rule(2, "cpu", "predict")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("devices", "expected"), [(1, 1), (4, 4), ("2", 2), ("auto", 1), (-1, 1), ([0, 1, 3], 3), ([], 1)]
)
def test_processes_of_trainer_devices(devices, expected):
    assert processes_of(devices) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("max 100000", None), ("200000 100000", 2), ("150000 100000", 2), ("5000 100000", 1)],
)
def test_cgroup_quota(tmp_path, text, expected):
    path = tmp_path / "cpu.max"
    path.write_text(text + "\n")
    assert cgroup_cpu_limit(path) == expected
    assert cgroup_cpu_limit(tmp_path / "absent") is None


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_explicit_threads_win_and_are_restored(restore_threads, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    with machine.torch_threads(1, workers=0) as chosen:
        assert chosen == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == restore_threads
    with pytest.raises(ValueError, match="threads"), machine.torch_threads("many", workers=0):
        pass


def test_auto_threads_only_lower_torch_count(restore_threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(machine, "usable_cores", lambda: 64)
    with machine.torch_threads("auto", workers=0) as chosen:
        assert chosen == restore_threads  # never more than torch (or the caller) chose
    monkeypatch.setattr(machine, "usable_cores", lambda: 3)
    with machine.torch_threads(None, workers=2) as chosen:
        assert chosen == 1 == torch.get_num_threads()  # 3 cores, 2 of them loading
    assert torch.get_num_threads() == restore_threads


def test_auto_threads_leave_omp_num_threads_alone(restore_threads, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr(machine, "usable_cores", lambda: 1)
    with machine.torch_threads("auto", workers=0) as chosen:
        assert chosen == restore_threads == torch.get_num_threads()


def test_the_configs_resolve_workers_by_the_rule_and_explicit_values_win(monkeypatch):
    monkeypatch.setattr(machine, "usable_cores", lambda: 16)
    cfg = compose_config(["trainer=gpu"])
    assert cfg.data.num_workers == 8
    assert cfg.features.num_workers == cfg.real_photos.num_workers == 8
    cpu = compose_config([])
    expected = data_path_rule(16, "cpu", "train").workers
    assert cpu.data.num_workers == expected
    assert cpu.features.num_workers == data_path_rule(16, "cpu", "embed").workers
    assert compose_config(["trainer=ddp", "trainer.devices=4"]).data.num_workers == 3
    explicit = compose_config(["data.num_workers=5", "features.num_workers=0"])
    assert (explicit.data.num_workers, explicit.features.num_workers) == (5, 0)
    assert cpu.threads == "auto"
