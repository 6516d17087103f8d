"""``make gpu-check``'s plumbing on the CPU: the no-CUDA exit, the output folder's refusal, budgets and stopping, a
failing part that does not stop the others, the summary's format, and every part end to end at tiny sizes
(``--cpu-smoke``), so that the GPU run is the only new thing."""

import json
import subprocess
import sys
import time

import pytest
import torch

from c3a_tutorial.experiments import gpu_check, gpu_check_parts


def _cli(args):
    command = [sys.executable, "-m", "c3a_tutorial.experiments.gpu_check", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=gpu_check.REPO, timeout=1500)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_one_line_exit_1_and_nothing_written(tmp_path, capsys):
    out = tmp_path / "gpu"
    assert gpu_check.main(["--out", str(out)]) == 1
    printed = capsys.readouterr()
    assert printed.out.count("\n") == 1 and "no CUDA device here" in printed.out and "--cpu-smoke" in printed.out
    assert not out.exists()


def test_usage_errors_exit_2_and_leave_the_folder_alone(tmp_path, capsys):
    full = tmp_path / "full"
    full.mkdir()
    (full / "kept.json").write_text("precious")
    cases = [
        (["--out", str(full)], "exists and is not empty: pass --force"),
        (["--out", str(full / "kept.json")], "is a file, not a folder"),
        (["--out", str(tmp_path / "new"), "--budget", "0"], "--budget must be a positive number"),
        (["--out", str(tmp_path / "new"), "--data-file", str(tmp_path / "missing.json")], "is not a file"),
    ]
    for args, fragment in cases:
        assert gpu_check.main(["--cpu-smoke", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and fragment in err, err
    assert [p.name for p in full.iterdir()] == ["kept.json"] and (full / "kept.json").read_text() == "precious"
    assert not (tmp_path / "new").exists()


def test_end_to_end_smoke_summary_and_a_failing_part_does_not_stop_the_others(tmp_path):
    """Two parts through the real child processes: the finetune part fails (no such model), threads still runs."""
    out = tmp_path / "gpu"
    # A generous --budget: on a busy 2-core machine (load 8) importing torch and transformers in a child process
    # alone took over a minute; what is under test is that the failure is reported, not how fast.
    smoke = ["--cpu-smoke", "--out", str(out), "--budget", "4000"]
    done = _cli([*smoke, "--parts", "finetune", "threads", "--model", "/no/such/model"])
    assert done.returncode == 3, done.stdout + done.stderr  # a part failed: not 0, not a usage error
    summary = json.loads((out / "summary.json").read_text())
    assert summary["format"] == "c3a_tutorial.gpu_check" and summary["machine"]["mode"].startswith("cpu smoke")
    assert summary["machine"]["versions"]["torch"] == torch.__version__ and "peft" in summary["machine"]["versions"]
    parts = summary["parts"]
    assert list(parts) == ["install", *gpu_check.PARTS]
    assert parts["install"]["status"] == "skipped" and "C3A_GPU_WHEELS" in parts["install"]["reason"]
    assert parts["finetune"]["status"] == "failed" and "no/such/model" in parts["finetune"]["error"]
    assert parts["threads"]["status"] == "ok" and parts["threads"]["seconds"] > 0
    assert all(parts[p]["status"] == "skipped" and "--parts" in parts[p]["reason"] for p in ("tests", "bench"))
    threads = json.loads((out / "threads.json").read_text())
    assert {r["threads"] for r in threads["rows"]} == {1, 2} and all(r["ours_over_lora"] > 0 for r in threads["rows"])
    for line in ("finetune   failed", "threads    ok", "results in"):
        assert line in done.stdout  # the closing table
    assert "Traceback" in (out / "finetune.log").read_text() and "Traceback" not in done.stdout  # kept, not shown


def test_a_part_past_its_budget_is_stopped_and_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "GRACE_S", 0)
    args = gpu_check._parser().parse_args(["--cpu-smoke", "--out", str(tmp_path)])
    status = gpu_check.run_part("bench", args, tmp_path, budget_s=0.5)  # torch's import alone takes longer
    assert status["status"] == "failed" and "stopped after" in status["error"] and status["seconds"] < 30


def test_budgets_skip_what_no_longer_fits(tmp_path, monkeypatch, capsys):
    """With almost nothing left, every part is skipped with the reason, and the summary says so."""
    monkeypatch.setattr(gpu_check, "MIN_START_S", 10**6)
    out = tmp_path / "gpu"
    assert gpu_check.main(["--cpu-smoke", "--out", str(out)]) == 0
    parts = json.loads((out / "summary.json").read_text())["parts"]
    assert all(parts[p]["status"] == "skipped" and "no time left" in parts[p]["reason"] for p in gpu_check.PARTS)
    assert "no time left" in capsys.readouterr().out
    assert sum(gpu_check.BUDGETS.values()) <= 400  # with install and start-up, under 8 minutes


def _child(name, tmp_path, model=None):
    """One part in this process (faster than the child process ``gpu_check`` starts), its result as saved."""
    part = gpu_check_parts.Part(name, tmp_path, time.time() + 900, True, model)  # generous: a busy machine is slow
    gpu_check_parts.PARTS[name](part)
    part.save()
    return json.loads((tmp_path / f"{name}.json").read_text())


def test_operator_and_bench_parts_write_their_files(tmp_path):
    operator = _child("operator", tmp_path)
    variants = {"gpu choices", "before (one chunk, CPU's other choices)", "dense gather", "auto", "lora-r8 adapter"}
    assert {r["dtype"] for r in operator["rows"]} == {"float32", "bfloat16"}
    assert all(set(r["variants"]) == variants and r["before_over_gpu_choices"]["median"] > 0 for r in operator["rows"])
    assert {p["variant"] for p in operator["profiles"]} == variants
    assert all(sum(p["kinds_ms"].values()) > 0 for p in operator["profiles"])
    bench = _child("bench", tmp_path)
    assert sorted(bench["files"]) == [
        f"bench_cpu_{d}_64x64.{e}" for d in ("bfloat16", "float32") for e in ("json", "png")
    ]
    for name in bench["files"]:
        assert (tmp_path / name).stat().st_size > 500
    assert {t["target"] for t in bench["targets"]} == {"peft-c3a / ours", "ours / lora-r8"}
    assert all(cmd.startswith("python -m c3a_tutorial.bench --device cpu") for cmd in bench["commands"])


def test_finetune_part_on_a_tiny_model(tmp_path, tiny_dir):
    finetune = _child("finetune", tmp_path, model=str(tiny_dir))
    assert [r["method"] for r in finetune["runs"]] == ["c3a", "lora", "full"]
    assert all(0 <= r["accuracy"] <= 1 and "verdict" in r for r in finetune["runs"])
    assert finetune["notebook05"] and finetune["notebook05"][0]["seconds"] > 0


@pytest.mark.slow  # four compiled runs' tracing: 30 s on the loaded 2-core sandbox
def test_compile_part_times_each_option_on_a_tiny_model(tmp_path, tiny_dir):
    """Eager and --compile (aot_eager in the smoke) for C3A and LoRA; --cuda-graphs is skipped without CUDA."""
    result = _child("compile", tmp_path, model=str(tiny_dir))
    rows = {r["run"]: r for r in result["rows"]}
    assert list(rows) == [f"{m} {s} {o}" for o in ("eager", "cuda-graphs", "compile") for m, s in
                          (("c3a", "block_size=8"), ("lora", "rank=2"))]  # fmt: skip
    assert all(rows[n]["status"] == "skipped" and "CUDA" in rows[n]["reason"] for n in rows if "cuda-graphs" in n)
    for method in ("c3a block_size=8", "lora rank=2"):
        eager, compiled = rows[f"{method} eager"], rows[f"{method} compile"]
        assert eager["step"]["n"] == compiled["step"]["n"] == result["timed_steps"] and eager["step"]["median_ms"] > 0
        assert compiled["eager_over_option"] > 0 and "eager_over_option" not in eager
        assert len(compiled["losses"]) == result["warmup_steps"] + result["timed_steps"]
        assert compiled["max_loss_difference_vs_eager"] < 1e-4  # aot_eager: the eager losses, to rounding
    assert "c3a block_size=8 compile" in result["note"]


def test_compile_part_keeps_the_other_runs_when_one_option_fails(tmp_path, tiny_dir, monkeypatch):
    from c3a_tutorial.experiments import train

    def train_or_fail(run):
        if run.config.compile:
            raise RuntimeError("no kernel for this op")
        return real_train(run)

    real_train = train.train
    monkeypatch.setattr(train, "train", train_or_fail)
    result = _child("compile", tmp_path, model=str(tiny_dir))
    status = {r["run"]: r["status"] for r in result["rows"]}
    assert status == {"c3a block_size=8 eager": "ok", "lora rank=2 eager": "ok", "c3a block_size=8 cuda-graphs":
                      "skipped", "lora rank=2 cuda-graphs": "skipped", "c3a block_size=8 compile": "failed",
                      "lora rank=2 compile": "failed"}  # fmt: skip
    assert result["status"] == "failed" and "no kernel for this op" in result["error"]
    assert result["note"].startswith("failed: c3a block_size=8 compile: RuntimeError")


def test_sweep_part_on_a_tiny_model(tmp_path, tiny_dir):
    sweep = _child("sweep", tmp_path, model=str(tiny_dir))
    assert sorted(r["method"] for r in sweep["runs"]) == ["c3a", "lora"]
    assert sweep["torchrun"]["status"] == "skipped" and "GPU" in sweep["torchrun"]["reason"]
    assert (tmp_path / "sweep_cpu.json").exists()


def test_comparison_with_cpu_seeds():
    stored = {"runs": [{"method": "c3a", "block_size": 24, "lr": 1.0, "seed": s, "accuracy": a}
                       for s, a in ((0, 0.70), (1, 0.74), (2, 0.78))]}  # fmt: skip
    stored["runs"] += [{"method": "c3a", "block_size": 24, "lr": 3.0, "seed": 0, "accuracy": 0.1}]
    seeds = gpu_check_parts.cpu_seeds(stored, "c3a", 24, 1.0)
    assert seeds == {0: 0.70, 1: 0.74, 2: 0.78}
    assert gpu_check_parts.compare_with_seeds(0.75, seeds)["verdict"] == "within the CPU seeds' spread"
    far = gpu_check_parts.compare_with_seeds(0.60, seeds)  # mean 0.74, sd 0.04: 0.60 is 3.5 sd below
    assert far["verdict"] == "outside the CPU seeds' spread" and not far["inside_min_max"]
    assert "not comparable" in gpu_check_parts.compare_with_seeds(0.7, {0: 0.7})["verdict"]


def test_tests_part_runs_the_cuda_tests_and_they_skip_here(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("on a CUDA machine the part runs them for real")
    rc = gpu_check_parts.run_child("tests", tmp_path, time.time() + 900, True, None)
    result = json.loads((tmp_path / "tests.json").read_text())
    assert rc == 0 and result["status"] == "ok" and result["counts"].get("skipped", 0) >= 10
    assert result["counts"].get("failed", 0) == 0
