"""The parameter-budget sweep through its command line, on a tiny BERT: every run lands in the JSON, a rerun
skips finished runs, an interrupted sweep keeps what finished, a bad file is refused untouched, and the
table, figure and paired comparison come out."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from c3a_tutorial.experiments import sweep, sweep_cli, sweep_report


def _argv(tiny_dir, out, *extra):
    # Tiny BERT (hidden 32): C3A b=8 and LoRA r=2 both train 512 adapter numbers, a matched budget.
    argv = ["--model", str(tiny_dir), "--output", str(out), "--block-sizes", "8", "--ranks", "2", "--no-full"]
    argv += ["--epochs", "1", "--max-steps", "2", "--train-size", "32", "--eval-size", "16", "--max-length", "16"]
    return [*argv, "--batch-size", "8", "--no-progress", *extra]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # The tiny runs are too small to share out; one thread also keeps them quick on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Calls(list):
    interrupt_at = None  # raise KeyboardInterrupt on this call (1-based), as Ctrl-C during that run would


@pytest.fixture
def counted(monkeypatch):
    """Count (and optionally interrupt) the fine-tuning runs the sweep starts."""
    calls = Calls()
    real = sweep.finetune

    def finetune(config, data=None):
        calls.append((config.method, config.seed))
        if calls.interrupt_at == len(calls):
            raise KeyboardInterrupt
        return real(config, data=data)

    monkeypatch.setattr(sweep, "finetune", finetune)
    return calls


def test_every_run_is_stored_with_table_figure_and_paired_comparison(tiny_dir, tmp_path, capsys, counted):
    out = tmp_path / "sweep.json"
    results = sweep_cli.main(_argv(tiny_dir, out, "--seeds", "0", "1", "--lr", "c3a=1", "lora=0.01"))
    stored = json.loads(out.read_text())
    assert stored == results and stored["format"] == sweep.FORMAT and stored["status"] == "complete"
    ids = sorted(r["run_id"] for r in stored["runs"])
    assert ids == ["c3a b=8 lr=1 seed=0", "c3a b=8 lr=1 seed=1", "lora r=2 lr=0.01 seed=0", "lora r=2 lr=0.01 seed=1"]
    assert len(counted) == 4
    for run in stored["runs"]:
        assert run["adapter_params"] == 512 and run["trainable_params"] == 512 + 32 * 8 + 8
        for key in ("accuracy", "val_accuracy", "peak_memory_mb", "time_per_step_s", "versions", "machine", "seed"):
            assert key in run
        assert run["lr_times_scale"] == pytest.approx(run["lr"] / 32 if run["method"] == "c3a" else run["lr"])
    # Table, figure, and the paired comparison at the one matched budget.
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = out.with_suffix(".md").read_text()
    assert "| C3A | b=8 | 512 |" in report and "| LoRA | r=2 | 512 |" in report
    assert "512 parameters, C3A b=8 vs LoRA r=2" in report
    rows = sweep_report.summarize(stored)
    assert [(r["method"], r["seeds"]) for r in rows] == [("c3a", [0, 1]), ("lora", [0, 1])]
    (pair,) = sweep_report.paired_comparison(stored)
    assert pair["seeds"] == [0, 1] and len(pair["differences"]) == 2
    assert "| C3A | b=8 |" in capsys.readouterr().out
    # --report-only rewrites table and figure from the JSON without training.
    out.with_suffix(".png").unlink()
    sweep_cli.main(_argv(tiny_dir, out, "--seeds", "0", "1", "--lr", "c3a=1", "lora=0.01", "--report-only"))
    assert out.with_suffix(".png").exists() and len(counted) == 4


def test_resume_skips_finished_runs_and_an_interruption_keeps_them(tiny_dir, tmp_path, counted):
    out = tmp_path / "sweep.json"
    fixed = ("--lr", "c3a=1", "lora=0.01")
    counted.interrupt_at = 2  # the second run is interrupted: the first must already be on disk
    with pytest.raises(KeyboardInterrupt):
        sweep_cli.main(_argv(tiny_dir, out, "--seeds", "0", *fixed))
    first = json.loads(out.read_text())
    assert [r["run_id"] for r in first["runs"]] == ["c3a b=8 lr=1 seed=0"]
    assert first["status"] == "partial: 1 of 2 planned runs finished"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind

    counted.interrupt_at = None
    counted.clear()
    sweep_cli.main(_argv(tiny_dir, out, "--seeds", "0", "1", *fixed))
    assert counted == [("lora", 0), ("c3a", 1), ("lora", 1)]  # c3a seed 0 was not run again; seed by seed
    stored = json.loads(out.read_text())
    assert stored["runs"][0] == first["runs"][0] and len(stored["runs"]) == 4

    counted.clear()
    sweep_cli.main(_argv(tiny_dir, out, "--seeds", "0", "1", *fixed))
    assert counted == [] and json.loads(out.read_text())["runs"] == stored["runs"]


def test_the_lr_grid_runs_on_validation_then_the_main_grid_reuses_its_run(tiny_dir, tmp_path, counted):
    out = tmp_path / "sweep.json"
    grid = ("--lr-grid", "c3a=0.5,2", "--lr-block-size", "8", "--ranks")  # the last --ranks wins: no LoRA
    results = sweep_cli.main(_argv(tiny_dir, out, "--seeds", "0", "1", *grid))
    lrs = results["learning_rates"]["c3a"]
    grid = {run["lr"]: run["val_accuracy"] for run in results["runs"] if run["phase"] == "lr grid"}
    assert sorted(grid) == [0.5, 2.0] and lrs["grid"] == {"0.5": grid[0.5], "2": grid[2.0]}
    assert lrs["chosen"] == max(sorted(grid), key=grid.get)
    # Two grid runs at seed 0, then the main grid at the chosen lr: its seed 0 is the grid's run, reused.
    assert len(counted) == 3 and results["runs_planned"] == 3 and results["status"] == "complete"
    assert [r["seed"] for r in sweep_report.main_runs(results)] == [0, 1]


@pytest.mark.parametrize(
    "content",
    [b'{"format": "c3a-tutorial parameter-budget sweep, v1", "runs": [', b"[1, 2, 3]\n", b"\xff\xfe\x00"],
    ids=["truncated", "not-a-sweep", "binary"],
)
def test_a_corrupted_results_file_is_refused_untouched(tiny_dir, tmp_path, capsys, counted, content):
    out = tmp_path / "sweep.json"
    out.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        sweep_cli.main(_argv(tiny_dir, out, "--seeds", "0", "--lr", "c3a=1", "lora=0.01"))
    assert exit_info.value.code == 2
    assert "left untouched" in capsys.readouterr().err
    assert out.read_bytes() == content and counted == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.json"]


def test_a_file_from_other_training_settings_is_refused_untouched(tiny_dir, tmp_path, capsys, counted):
    out = tmp_path / "sweep.json"
    sweep_cli.main(_argv(tiny_dir, out, "--seeds", "0", "--ranks", "--lr", "c3a=1"))
    before = out.read_bytes()
    with pytest.raises(SystemExit):
        sweep_cli.main(_argv(tiny_dir, out, "--seeds", "0", "--ranks", "--lr", "c3a=1", "--max-length", "24"))
    assert "'max_length': (16, 24)" in capsys.readouterr().err
    assert out.read_bytes() == before and len(counted) == 1


def test_run_ids_and_the_planned_count():
    assert sweep.run_id("c3a", 24, 3.0, 0) == "c3a b=24 lr=3 seed=0"
    assert sweep.run_id("full", None, 1e-4, 2) == "full lr=0.0001 seed=2"
    config = sweep.SweepConfig()  # the stored sweep: 9 grid runs, 42 main runs, 3 of them shared
    plan, total = sweep.planned_runs(config, [])
    assert total == 9 + (7 + 6 + 1) * 3 - 3 and len(plan) == 9
    assert [p[1:] for p in plan[:3]] == [("c3a", 24, 0.3, 0), ("c3a", 24, 1.0, 0), ("c3a", 24, 3.0, 0)]
    assert [p[1] for p in plan[6:]] == ["full"] * 3  # full fine-tuning's grid waits for the adapters' first seed
    # Once every grid has run (fake records here), the whole plan is known, in running order.
    grid = [dict(run_id=sweep.run_id(*p[1:]), val_accuracy=p[3]) for p in plan]  # the largest lr "wins"
    plan, total = sweep.planned_runs(config, grid)
    assert len(plan) == total == 48 and len({sweep.run_id(*p[1:]) for p in plan}) == 48
    phases = [(p[0], p[1], p[4]) for p in plan]
    assert phases[:6] == [("lr grid", "c3a", 0)] * 3 + [("lr grid", "lora", 0)] * 3
    assert [p[1:3] for p in plan[6:10]] == [("c3a", 384), ("c3a", 192), ("lora", 1), ("c3a", 96)]
    # Seed 0's main runs reuse the grid's best runs (c3a b=24, lora r=8): 6 + 5 more, then full fine-tuning's grid
    # (its best run is seed 0's), then seed 1.
    assert [p[:2] for p in plan[16:20]] == [("main", "lora")] + [("lr grid", "full")] * 3
    assert plan[20][1:] == ("c3a", 384, 3.0, 1) and plan[-1][1:] == ("full", None, 3e-4, 2)
    reduced = sweep.reduced_sweep_config(lr={"c3a": 3.0, "lora": 1e-2})  # the notebook's live sweep
    plan, total = sweep.planned_runs(reduced, [])
    assert total == len(plan) == 8 and [p[4] for p in plan] == [0] * 4 + [1] * 4
    assert [p[1:3] for p in plan[:4]] == [("c3a", 96), ("lora", 2), ("c3a", 24), ("lora", 8)]  # matched pairs


def test_cuda_without_a_gpu_is_refused_before_anything_is_written(tiny_dir, tmp_path, capsys, counted):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "sweep.json"
    with pytest.raises(SystemExit) as exit_info:
        sweep_cli.main(_argv(tiny_dir, out, "--seeds", "0", "--lr", "c3a=1", "lora=0.01", "--device", "cuda"))
    assert exit_info.value.code == 2 and "not available here" in capsys.readouterr().err
    assert not out.exists() and counted == []


def test_the_stored_sweep_is_found_and_the_package_copy_matches():
    stored = sweep_report.load_stored_sweep()
    if stored is None:
        pytest.skip("no stored sweep yet")
    assert sweep.read_results(stored.json_path)["runs"]  # a valid sweep file with runs
    copy = sweep_report.PACKAGE_RESULTS / stored.json_path.name
    if stored.json_path != copy and copy.exists():
        # The package's copy may lag a sweep still running in the checkout, but never disagrees with it.
        ours = {r["run_id"]: r for r in stored.results["runs"]}
        for run in sweep.read_results(copy)["runs"]:
            assert ours.get(run["run_id"]) == run, "the package copy differs: run sweep_report.copy_to_package()"


@pytest.mark.distributed
def test_under_torchrun_each_run_is_one_ddp_run_and_rank_0_writes(tiny_dir, tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    out = tmp_path / "sweep.json"
    command = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "c3a_tutorial.sweep"]
    command += _argv(tiny_dir, out, "--seeds", "0", "--ranks", "--lr", "c3a=1", "--device", "cpu")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run,) = json.loads(out.read_text())["runs"]
    assert run["world_size"] == 2 and run["rank_checksums"][0] == run["rank_checksums"][1]


def test_the_notebooks_live_sweep_on_cpu_uses_the_stored_learning_rates(tiny_dir, tmp_path, monkeypatch, counted):
    stored = {"learning_rates": {"c3a": {"chosen": 2.0}, "lora": {"chosen": 0.02}, "full": {"chosen": 1e-4}}}
    monkeypatch.setattr(sweep_report, "load_stored_sweep", lambda: sweep_report.StoredSweep(stored, None, None, None))
    tiny = dict(model=str(tiny_dir), block_sizes=(8,), ranks=(2,), seeds=(0,), train_size=16, eval_size=16)
    results = sweep.live_sweep(tmp_path / "live.json", device="cpu", max_length=16, max_steps=1, progress=False, **tiny)
    assert sorted(r["run_id"] for r in results["runs"]) == ["c3a b=8 lr=2 seed=0", "lora r=2 lr=0.02 seed=0"]
    assert (tmp_path / "live.png").exists() and len(counted) == 2
