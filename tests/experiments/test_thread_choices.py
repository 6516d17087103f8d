"""``path_costs --thread-choices``: every CPU thread choice of the operator and LoRA's adapter timed in the same
rounds, and the one-thread rows really at one thread (the question they answer: does the second thread help?)."""

import json

import torch

from c3a_tutorial.c3a import block_circulant as bc
from c3a_tutorial.experiments import path_costs


def test_every_choice_is_timed_each_round_and_the_one_thread_rows_run_at_one_thread(monkeypatch):
    seen = []
    real_run = bc._run

    def spy(plan, work):
        seen.append(torch.get_num_threads())
        real_run(plan, work)

    monkeypatch.setattr(bc, "_run", spy)
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        row = path_costs._thread_choice_row(32, 32, 8, 16, rounds=2)
        assert torch.get_num_threads() == 2  # the one-thread rows gave torch its threads back
    finally:
        torch.set_num_threads(saved)
    names = {"lora-r8 adapter", "lora-r8 adapter, 1 thread", "shared chunks", "intra-op", "default",
             "intra-op, 1 thread", path_costs.STATE_PROBE}  # fmt: skip
    assert set(row["times_ms"]) == names and all(len(t) == 2 for t in row["times_ms"].values())
    assert row["threads"] == 2 and set(row["median_ms"]) == names
    # 3 rounds (one warm-up) of 4 operator rows, forward and backward each: the "1 thread" row's 6 calls at 1 thread
    # (the shared-chunks row sets 1 inside _run, after the spy has read the count).
    assert len(seen) == 3 * 4 * 2 and seen.count(1) == 3 * 2


def test_the_command_line_writes_the_rows_and_the_machine(tmp_path, monkeypatch):
    monkeypatch.setattr(path_costs, "DEFAULT_CELLS", [(32, 32, 8)])
    calls = []
    monkeypatch.setattr(path_costs, "time_thread_choices", lambda rounds: calls.append(rounds) or [{"d_out": 32}])
    out = tmp_path / "threads.json"
    saved = torch.get_num_threads()
    try:
        path_costs.main(["--threads", "1", "--thread-choices", "--rounds", "3", "--out", str(out)])
    finally:
        torch.set_num_threads(saved)
    stored = json.loads(out.read_text())
    assert calls == [3] and stored["rows"] == [{"d_out": 32}] and stored["machine"]["cpu_count"] >= 1


def test_rounds_are_told_apart_by_the_probes_time():
    """Rounds whose probe took more than 1.25 × its 10th percentile are the slow state's; each state gets its own
    medians, and a run that stayed in one state has one entry."""
    times = {path_costs.STATE_PROBE: [1.0, 1.05, 1.5, 1.0, 1.55, 1.02], "default": [22, 22, 28, 21, 29, 23]}
    states = path_costs.by_state(times)
    assert states["fast"]["rounds"] == 4 and states["slow"]["rounds"] == 2
    assert states["fast"]["median_ms"]["default"] == 22 and states["slow"]["median_ms"]["default"] == 28.5
    steady = path_costs.by_state({path_costs.STATE_PROBE: [1.0, 1.1, 1.05], "default": [22, 23, 24]})
    assert set(steady) == {"fast"} and steady["fast"]["rounds"] == 3
