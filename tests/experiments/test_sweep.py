"""The parameter-budget sweep: real runs through its command line on a tiny BERT (every run lands in the JSON, a
rerun skips finished runs, an interruption keeps what finished, table, figure and comparisons come out), and its
planning with made-up runs (per-setting lr grids that grow past an edge, the order, what a partial file says
is missing, several processes sharing one file)."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from c3a_tutorial.experiments import sweep, sweep_cli, sweep_file, sweep_report

V1_FILE = Path(__file__).resolve().parents[2] / "data" / "results" / "sweep_v1" / "sweep_minilm.json"


def _argv(tiny_dir, out, *extra):
    # Tiny BERT (hidden 32, 2 layers): C3A b=8 and LoRA r=2 both train 512 adapter numbers, a matched budget.
    argv = ["--model", str(tiny_dir), "--output", str(out)]
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

    def finetune(config, data=None, **options):
        calls.append((config.method, config.seed))
        if calls.interrupt_at == len(calls):
            raise KeyboardInterrupt
        return real(config, data=data, **options)

    monkeypatch.setattr(sweep, "finetune", finetune)
    return calls


def test_every_run_is_stored_with_table_figure_and_comparisons(tiny_dir, tmp_path, capsys, counted):
    out = tmp_path / "sweep.json"
    methods = ("--methods", "c3a=8", "lora=2", "--seeds", "0", "1", "--lr", "c3a=1", "lora=0.01")
    results = sweep_cli.main(_argv(tiny_dir, out, *methods))
    stored = json.loads(out.read_text())
    assert stored == results and stored["format"] == sweep.FORMAT and stored["status"] == "complete"
    assert stored["missing"] == []
    ids = sorted(r["run_id"] for r in stored["runs"])
    assert ids == ["c3a b=8 lr=1 seed=0", "c3a b=8 lr=1 seed=1", "lora r=2 lr=0.01 seed=0", "lora r=2 lr=0.01 seed=1"]
    assert len(counted) == 4
    for run in stored["runs"]:
        assert run["adapter_params"] == 512 and run["trainable_params"] == 512 + 32 * 8 + 8
        for key in ("accuracy", "val_accuracy", "peak_memory_mb", "time_per_step_s", "versions", "machine", "seed"):
            assert key in run
        assert len(run["test_correct"]) == 16 and set(run["test_correct"]) <= {"0", "1"}
        assert run["test_correct"].count("1") == round(run["accuracy"] * 16)
        scale = 1 / 32 if run["method"] == "c3a" else 8 / 2  # C3A: 1/d_in; LoRA: lora_alpha / r
        assert run["adapter_scale"] == pytest.approx(scale)
        assert run["lr_times_scale"] == pytest.approx(run["lr"] * scale)
        assert run["optimizer"]["weight_decay"] == 0.0 and run["optimizer"]["max_grad_norm"] == 1.0
    assert {r["lora_alpha"] for r in stored["runs"] if r["method"] == "lora"} == {8.0}
    # Table, figure, and the comparison at the one matched budget.
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = out.with_suffix(".md").read_text()
    assert "| C3A | b=8 | 512 |" in report and "| LoRA | r=2 | 512 |" in report
    assert "**C3A b=8 vs LoRA r=2** (matched budget, 2 seeds)" in report and "McNemar per seed" in report
    rows = sweep_report.summarize(stored)
    assert [(r["method"], r["seeds"]) for r in rows] == [("c3a", [0, 1]), ("lora", [0, 1])]
    (pair,) = sweep_report.comparisons(stored)
    assert pair["seeds"] == [0, 1] and len(pair["differences"]) == 2 and len(pair["mcnemar"]) == 2
    assert "| C3A | b=8 |" in capsys.readouterr().out
    # --report-only rewrites table and figure from the JSON without training.
    out.with_suffix(".png").unlink()
    sweep_cli.main(_argv(tiny_dir, out, *methods, "--report-only"))
    assert out.with_suffix(".png").exists() and len(counted) == 4


def test_resume_skips_finished_runs_and_an_interruption_keeps_them(tiny_dir, tmp_path, counted):
    out = tmp_path / "sweep.json"
    fixed = ("--methods", "c3a=8", "lora=2", "--lr", "c3a=1", "lora=0.01")
    counted.interrupt_at = 2  # the second run is interrupted: the first must already be on disk
    with pytest.raises(KeyboardInterrupt):
        sweep_cli.main(_argv(tiny_dir, out, "--seeds", "0", *fixed))
    first = json.loads(out.read_text())
    assert [r["run_id"] for r in first["runs"]] == ["c3a b=8 lr=1 seed=0"]
    assert first["status"] == "partial: 1 of 2 planned runs finished"
    assert first["missing"] == ["lora r=2 lr=0.01 seed=0"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind
    assert not sweep_file.live_claims(out)  # the interrupted run's claim was given back

    counted.interrupt_at = None
    counted.clear()
    sweep_cli.main(_argv(tiny_dir, out, "--seeds", "0", "1", *fixed))
    assert counted == [("lora", 0), ("c3a", 1), ("lora", 1)]  # c3a seed 0 was not run again; seed by seed
    stored = json.loads(out.read_text())
    assert stored["runs"][0] == first["runs"][0] and len(stored["runs"]) == 4

    counted.clear()
    sweep_cli.main(_argv(tiny_dir, out, "--seeds", "0", "1", *fixed))
    assert counted == [] and json.loads(out.read_text())["runs"] == stored["runs"]


def test_each_setting_chooses_its_lr_on_validation_and_reuses_its_run(tiny_dir, tmp_path, counted):
    out = tmp_path / "sweep.json"
    grid = ("--methods", "c3a=8,16", "--lr-grid", "c3a=0.5,2", "--lr-extensions", "0", "--seeds", "0", "1")
    results = sweep_cli.main(_argv(tiny_dir, out, *grid))
    for setting in (8, 16):
        info = results["learning_rates"][f"c3a b={setting}"]
        mine = {
            r["lr"]: r["val_accuracy"]
            for r in results["runs"]
            if r["phase"] == "lr grid" and r["block_size"] == setting
        }
        assert sorted(mine) == [0.5, 2.0] and info["grid"] == {"0.5": round(mine[0.5], 4), "2": round(mine[2.0], 4)}
        assert info["chosen"] == max(sorted(mine), key=mine.get)  # ties go to the smaller lr
    # Two grid runs per setting at seed 0, then seed 1 at the chosen lr: seed 0 is the grid's run, reused.
    assert len(counted) == 6 and results["runs_planned"] == 6 and results["status"] == "complete"
    assert sorted((r["block_size"], r["seed"]) for r in sweep_report.main_runs(results)) == [
        (8, 0),
        (8, 1),
        (16, 0),
        (16, 1),
    ]


# --------------------------------------------------------------------------------------------------
# Planning, with made-up runs (no training)


def _fake_run(item, val_accuracy, accuracy=0.5):
    phase, method, setting, lr, seed = item
    size_field = sweep.get_experiment_method(method).size_field
    record = {"run_id": sweep.run_id(method, setting, lr, seed), "phase": phase, "method": method, "lr": lr,
              "seed": seed, "val_accuracy": val_accuracy, "accuracy": accuracy, "adapter_params": 1,
              "trainable_params": 2, "peak_memory_mb": 1.0}  # fmt: skip
    return {**record, **({size_field: setting} if size_field else {})}


def test_a_best_lr_at_the_edge_of_its_grid_extends_the_grid():
    config = sweep.SweepConfig(settings={"lora": (8,)}, seeds={"lora": (0, 1)}, lr_grid={"lora": (1e-3, 3e-3, 1e-2)})
    runs, rounds = [], 0
    while True:  # validation accuracy peaks at lr 0.03: the grid must grow upward once to find it, then stop
        plan, _ = sweep.planned_runs(config, runs)
        todo = [p for p in plan if p[0] == "lr grid" and sweep.run_id(*p[1:]) not in {r["run_id"] for r in runs}]
        if not todo:
            break
        runs += [_fake_run(p, val_accuracy=1 - abs(p[3] - 0.03)) for p in todo]
        rounds += 1
    info = sweep.learning_rates(config, runs)["lora r=8"]
    assert sorted(float(lr) for lr in info["grid"]) == [1e-3, 3e-3, 1e-2, 3e-2, 0.1]
    assert info["chosen"] == 0.03 and info["extended"] == 2 and info["note"] == "" and rounds == 3
    # A peak beyond every extension is chosen at the edge and marked so.
    config.lr_extensions = 1
    edge = [_fake_run(("lr grid", "lora", 8, lr, 0), val_accuracy=lr) for lr in (1e-3, 3e-3, 1e-2, 3e-2)]
    info = sweep.learning_rates(config, edge)["lora r=8"]
    assert info["chosen"] == 0.03 and info["note"] == "best at the edge of its grid after 1 extension(s)"
    # Steps stay on the 1-3-10 series, downward too.
    assert sweep._grid_step([0.3, 1.0, 3.0], upward=False) == 0.1 and sweep._grid_step([0.3, 1.0, 3.0], True) == 10.0


def test_the_default_plan_counts_and_orders_its_runs():
    assert sweep.run_id("c3a", 24, 3.0, 0) == "c3a b=24 lr=3 seed=0"
    assert sweep.run_id("full", None, 1e-4, 2) == "full lr=0.0001 seed=2"
    assert sweep.run_id("fourierft", 768, 0.01, 1) == "fourierft n=768 lr=0.01 seed=1"
    config = sweep.SweepConfig()  # the stored sweep
    plan, total = sweep.planned_runs(config, [])
    units = {m: len(s) for m, s in config.settings.items()}
    assert units == {"c3a": 4, "lora": 4, "rslora": 2, "dora": 2, "vera": 2, "fourierft": 2, "full": 1}
    # Per setting: a 3-lr grid at seed 0, then its other seeds (5 for the matched pair, 3 for the rest).
    assert total == 8 * (3 + 4) + 9 * (3 + 2) and len(plan) == 3 * 17
    assert all(p[0] == "lr grid" for p in plan)
    assert {p[1] for p in plan[:24]} == {"c3a", "lora"}  # the matched pair's grids first
    assert [p[1] for p in plan[-3:]] == ["full"] * 3  # full fine-tuning last
    # Once every grid has run (the middle lr wins everywhere), the whole plan is known, in running order.
    grid = [_fake_run(p, val_accuracy=1.0 if p[3] == config.grid(p[1])[1] else 0.5) for p in plan]
    plan, total = sweep.planned_runs(config, grid)
    assert len(plan) == total == 8 * 7 + 9 * 5 and len({sweep.run_id(*p[1:]) for p in plan}) == total
    main = [p for p in plan if p[0] == "main"]
    assert [p[4] for p in main[:8]] == [1] * 8 and {p[1] for p in main[:8]} == {"c3a", "lora"}
    assert [p[1:3] for p in main[:4]] == [("c3a", 192), ("lora", 1), ("c3a", 48), ("lora", 4)]  # pairs together
    assert main[-1][1:] == ("full", None, 3e-4, 2)
    assert sweep.missing_runs(config, grid)[0] == sweep.run_id(*main[0][1:])


def test_the_reduced_live_sweep_is_c3a_and_lora_at_two_matched_budgets():
    reduced = sweep.reduced_sweep_config(lr={"c3a": 3.0, "lora": 1e-2})
    plan, total = sweep.planned_runs(reduced, [])
    assert total == len(plan) == 8 and [p[4] for p in plan] == [0] * 4 + [1] * 4
    assert [p[1:3] for p in plan[:4]] == [("c3a", 96), ("lora", 2), ("c3a", 24), ("lora", 8)]


def test_two_processes_share_one_file_and_run_every_run_once(tmp_path, monkeypatch):
    out = tmp_path / "sweep.json"
    config = sweep.SweepConfig(
        settings={"c3a": (8,), "lora": (2,)}, seeds={"c3a": (0, 1, 2), "lora": (0, 1, 2)},
        lr_grid={"c3a": (0.5, 1.0), "lora": (0.01, 0.03)}, lr_extensions=0, model="tiny", progress=False,
    )  # fmt: skip
    started, lock, done_runs = [], threading.Lock(), set()

    def one_run(config, phase, method, setting, lr, seed, data, name):
        with lock:
            started.append(name)
        time.sleep(0.05)
        done_runs.add(name)
        return _fake_run((phase, method, setting, lr, seed), val_accuracy=1 / lr)

    monkeypatch.setattr(sweep, "_one_run", one_run)
    monkeypatch.setattr(sweep, "WAIT_S", 0.01)
    set_claim, dropped_before_recorded = sweep.set_claim, []

    def checking_set_claim(path, run, claimed):
        # A finished run's claim may go only once its record is in the file: in between, another process would see
        # the run neither claimed nor done and run it again (it once did, on a busy machine).
        if not claimed and run in done_runs:
            recorded = json.loads(out.read_text())["runs"] if out.exists() else []
            if run not in {r["run_id"] for r in recorded}:
                dropped_before_recorded.append(run)
        set_claim(path, run, claimed)

    monkeypatch.setattr(sweep, "set_claim", checking_set_claim)
    workers = [threading.Thread(target=sweep.run_sweep, args=(config, out), kwargs={"data": object(), "report": False})
               for _ in range(2)]  # fmt: skip
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    stored = sweep.read_results(out)
    assert stored["status"] == "complete" and len(started) == len(set(started)) == 2 * (2 + 2)
    assert sorted(r["run_id"] for r in stored["runs"]) == sorted(started)
    assert not sweep_file.live_claims(out)
    assert not dropped_before_recorded, dropped_before_recorded


def test_a_claim_of_a_dead_process_does_not_count(tmp_path):
    out = tmp_path / "sweep.json"
    with sweep_file.locked(out):
        sweep_file.set_claim(out, "c3a b=8 lr=1 seed=0", True)
        assert list(sweep_file.live_claims(out)) == ["c3a b=8 lr=1 seed=0"]
    claims = tmp_path / ".sweep.json.claims.json"
    data = json.loads(claims.read_text())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    data["c3a b=8 lr=1 seed=0"]["pid"] = int(dead.stdout)  # a process that has exited
    claims.write_text(json.dumps(data))
    assert sweep_file.live_claims(out) == {}


def test_a_write_that_fails_midway_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "sweep.json"
    path.write_text("old contents\n")

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(sweep_file.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        sweep_file.write_atomic(path, "new contents that never arrive\n")
    assert path.read_text() == "old contents\n" and [p.name for p in tmp_path.iterdir()] == ["sweep.json"]


# --------------------------------------------------------------------------------------------------
# Files and command-line input that are refused, untouched


@pytest.mark.parametrize(
    "content",
    [b'{"format": "c3a-tutorial parameter-budget sweep, v2", "runs": [', b"[1, 2, 3]\n", b"\xff\xfe\x00"],
    ids=["truncated", "not-a-sweep", "binary"],
)
def test_a_corrupted_results_file_is_refused_untouched(tiny_dir, tmp_path, capsys, counted, content):
    out = tmp_path / "sweep.json"
    out.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        sweep_cli.main(_argv(tiny_dir, out, "--methods", "c3a=8", "--seeds", "0", "--lr", "c3a=1"))
    assert exit_info.value.code == 2
    assert "left untouched" in capsys.readouterr().err
    assert out.read_bytes() == content and counted == []
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["sweep.json"]


def test_the_old_format_is_refused_with_what_changed(tiny_dir, tmp_path, capsys, counted):
    out = tmp_path / "sweep.json"
    out.write_bytes(V1_FILE.read_bytes())  # the first sweep, as it was stored
    with pytest.raises(SystemExit) as exit_info:
        sweep_cli.main(_argv(tiny_dir, out, "--methods", "c3a=8", "--seeds", "0", "--lr", "c3a=1"))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "older sweep" in err and "LoRA with alpha = r" in err
    assert out.read_bytes() == V1_FILE.read_bytes() and counted == []


def test_a_file_from_other_training_settings_is_refused_untouched(tiny_dir, tmp_path, capsys, counted):
    out = tmp_path / "sweep.json"
    sweep_cli.main(_argv(tiny_dir, out, "--methods", "c3a=8", "--seeds", "0", "--lr", "c3a=1"))
    before = out.read_bytes()
    with pytest.raises(SystemExit):
        sweep_cli.main(
            _argv(tiny_dir, out, "--methods", "c3a=8", "--seeds", "0", "--lr", "c3a=1", "--max-length", "24")
        )
    assert "'max_length': (16, 24)" in capsys.readouterr().err
    assert out.read_bytes() == before and len(counted) == 1


def _non_numeric_accuracy(path: Path) -> Path:
    record = {"run_id": "c3a b=8 lr=1 seed=0", "accuracy": "high", "val_accuracy": 0.5, "lr": 1.0, "seed": 0}
    path.write_text(json.dumps({"format": sweep.FORMAT, "training": {}, "runs": [record]}))
    return path


BAD_INPUT = [  # (argv after the tiny BERT's, message fragment); each: exit 2, nothing written or changed
    (["--threads", "-1"], "--threads: -1 is below 1"),
    (["--threads", "two"], "'two' is not a whole number"),
    (["--epochs", "0"], "--epochs: 0 is below 1"),
    (["--methods", "c3a=8", "--seeds", "-1"], "-1 is below 0"),
    (["--methods", "foo=3"], "'foo' is not a method"),
    (["--methods", "c3a"], "give its budgets"),
    (["--methods", "full=3"], "full fine-tuning has no budget"),
    (["--methods", "c3a=0"], "0 is below 1"),
    (["--methods", "c3a=8", "--lr", "c3a=-1"], "is not a positive, finite number"),
    (["--methods", "c3a=8", "--lr", "c3a=nan"], "is not a positive, finite number"),
    (["--methods", "c3a=8", "--lr", "c3a=1,2"], "one learning rate per method"),
    (["--methods", "c3a=8", "--lr-grid", "c3a=abc"], "'abc' is not a number"),
    (["--methods", "c3a=8", "--head-lr", "inf"], "is not a positive, finite number"),
    (["--methods", "c3a=8", "--lr-extensions", "-1"], "lr_extensions must be 0 or more"),
    (["--methods", "c3a=8", "--device", "tpu"], "'tpu' is not a device name"),
    (["--methods", "c3a=7"], "--methods c3a=7: --block-size 7 does not divide"),  # a traceback after the set-up
    (["--methods", "lora=40"], "--methods lora=40: --rank 40 is larger than"),
    (["--methods", "c3a=8", "--model", "/nonexistent"], "Could not load the model '/nonexistent'"),
]


@pytest.mark.parametrize("argv, message", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_command_line_input_gets_one_line_and_exit_2(tiny_dir, tmp_path, capsys, counted, argv, message):
    out = tmp_path / "sweep.json"
    with pytest.raises(SystemExit) as exit_info:
        sweep_cli.main(_argv(tiny_dir, out, *argv))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == [] and counted == []


@pytest.mark.parametrize("case", ["directory", "parent-is-a-file", "not-json", "report-without-json", "bad-record"])
def test_bad_output_paths_are_refused_before_any_run(tiny_dir, tmp_path, capsys, counted, case):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_dir.json").mkdir()
    (tmp_path / "other.md").write_text("someone's notes")
    out, extra, message = {
        "directory": (tmp_path / "a_dir.json", [], "it is a directory"),
        "parent-is-a-file": (tmp_path / "a_file" / "sweep.json", [], "is a file, not a directory"),
        "not-json": (tmp_path / "sweep.txt", [], "give a .json file"),
        "report-without-json": (tmp_path / "other.json", [], "other.md exists but other.json does not"),
        "bad-record": (_non_numeric_accuracy(tmp_path / "bad.json"), ["--report-only"], "non-numeric accuracy"),
    }[case]
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(SystemExit) as exit_info:
        sweep_cli.main(_argv(tiny_dir, out, "--methods", "c3a=8", "--seeds", "0", *extra))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before and counted == []


def test_cuda_without_a_gpu_is_refused_before_anything_is_written(tiny_dir, tmp_path, capsys, counted):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "sweep.json"
    with pytest.raises(SystemExit) as exit_info:
        sweep_cli.main(_argv(tiny_dir, out, "--methods", "c3a=8", "--seeds", "0", "--device", "cuda"))
    assert exit_info.value.code == 2 and "not available here" in capsys.readouterr().err
    assert not out.exists() and counted == []


# --------------------------------------------------------------------------------------------------
# The stored sweep, torchrun, the notebook's live sweep


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
    command += _argv(tiny_dir, out, "--methods", "c3a=8", "--seeds", "0", "--lr", "c3a=1", "--device", "cpu")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run,) = json.loads(out.read_text())["runs"]
    assert run["world_size"] == 2 and run["rank_checksums"][0] == run["rank_checksums"][1]


def test_the_notebooks_live_sweep_on_cpu_uses_the_stored_learning_rates(tiny_dir, tmp_path, monkeypatch, counted):
    stored = {"learning_rates": {"c3a b=24": {"chosen": 2.0}, "lora r=8": {"chosen": 0.02}, "full": {"chosen": 1e-4}}}
    monkeypatch.setattr(sweep_report, "load_stored_sweep", lambda: sweep_report.StoredSweep(stored, None, None, None))
    tiny = dict(model=str(tiny_dir), settings={"c3a": (8,), "lora": (2,)}, seeds={"c3a": (0,), "lora": (0,)})
    results = sweep.live_sweep(
        tmp_path / "live.json", device="cpu", max_length=16, max_steps=1, progress=False, train_size=16,
        eval_size=16, **tiny,
    )  # fmt: skip
    assert sorted(r["run_id"] for r in results["runs"]) == ["c3a b=8 lr=2 seed=0", "lora r=2 lr=0.02 seed=0"]
    assert (tmp_path / "live.png").exists() and len(counted) == 2


def test_truncation_cost_pairs_the_same_settings_and_seeds_at_two_lengths(tmp_path):
    def fake_sweep(max_length, accuracies):
        config = sweep.SweepConfig(
            settings={"c3a": (24,)}, seeds={"c3a": (0, 1, 2)}, lr={"c3a": 1.0}, max_length=max_length, model="tiny"
        )
        runs = [
            {**_fake_run(("main", "c3a", 24, 1.0, s), 0.5, a), "adapter_params": 73728}
            for s, a in enumerate(accuracies)
        ]
        results = {"format": sweep.FORMAT, "training": config.training("cpu"), "runs": runs}
        sweep._finish(results, config)
        return results

    short, long = fake_sweep(32, [0.80, 0.78, 0.79]), fake_sweep(64, [0.83, 0.82, 0.83])  # +3, +4, +4 points
    text = sweep_report.truncation_cost(short, long)
    assert "C3A b=24 (lr 1, 3 seeds): 64 tokens ahead by +3.7 points" in text
    assert text.startswith("(Examples cut: not counted here")  # the made-up model 'tiny' has no tokenizer
    out = tmp_path / "sweep.json"
    sweep_file.write_atomic(out, json.dumps(short))
    sweep_file.write_atomic(tmp_path / "sweep_len64.json", json.dumps(long))
    sweep_report.write_report(short, out)
    assert "## What truncation costs (sweep_len64.json)" in out.with_suffix(".md").read_text()
