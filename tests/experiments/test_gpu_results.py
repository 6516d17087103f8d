"""The stored GPU run (``data/results/gpu/``) is what its write-ups say it is: a complete ``make gpu-check`` on a
CUDA machine, every part ok, its files present, and the numbers the write-ups quote read from its files."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GPU = ROOT / "data" / "results" / "gpu"
PARTS = ("tests", "operator", "bench", "finetune", "sweep", "threads")


def _json(name: str) -> dict:
    return json.loads((GPU / name).read_text(encoding="utf-8"))


def test_summary_is_a_complete_cuda_run_with_every_part_ok_and_its_files_present():
    summary = _json("summary.json")
    assert summary["format"] == "c3a_tutorial.gpu_check" and summary["format_version"] == 1
    machine = summary["machine"]
    assert machine["mode"] == "cuda" and machine["cuda_available"] is True
    assert machine["gpus"] and all(name.startswith("NVIDIA") for name in machine["gpus"]), machine["gpus"]
    assert machine["versions"]["torch"] and machine["versions"]["cuda"] and machine["nvidia_smi"].count(",") == 1
    parts = summary["parts"]
    assert set(PARTS) <= set(parts), sorted(parts)
    for name in PARTS:
        part = parts[name]
        assert part["status"] == "ok", (name, part)
        assert 0 < part["seconds"] <= part["budget_s"] + 10, (name, part)  # stopped 10 s past it (GRACE_S)
        for file in part["files"]:
            assert (GPU / file).is_file(), f"{name} lists {file}, which is not stored"
        result = _json(f"{name}.json")
        assert result["part"] == name and result["status"] == "ok" and result["device"] == "cuda", name
    assert 0 < sum(parts[name]["seconds"] for name in PARTS) <= summary["total_seconds"]


def test_the_folder_is_small_and_holds_no_data_set_copy():
    files = [p for p in GPU.rglob("*") if p.is_file()]
    assert not any("data-cache" in p.parts or p.name.startswith("stdlib_docstrings") for p in files)
    assert sum(p.stat().st_size for p in files) < 1_000_000
    for p in files:
        if p.suffix == ".json":
            json.loads(p.read_text(encoding="utf-8"))  # every stored JSON parses


def test_write_ups_quote_the_stored_numbers():
    readme = (GPU / "README.md").read_text(encoding="utf-8")
    summary = _json("summary.json")
    assert summary["machine"]["gpus"][0] in readme and summary["machine"]["versions"]["torch"] in readme
    assert f"{summary['total_seconds']} s" in readme
    finetune = _json("finetune.json")
    for run in finetune["runs"]:  # the fine-tuning table: GPU accuracy and s/step per method
        assert re.search(rf"\| {run['accuracy']:.3f} \|.*\| {run['time_per_step_s']} \|", readme), run["method"]
    for run in finetune["notebook05"]:  # notebook 05's GPU time, per run
        assert f"| {run['name']}" in readme and f"| {run['seconds']} | {run['time_per_step_s']} |" in readme, run
    if not any(target["met"] for target in _json("bench.json")["targets"]):
        assert "None is met" in " ".join(readme.split())
    main = (ROOT / "README.md").read_text(encoding="utf-8")
    performance = main.split("## Performance", 1)[1].split("\n## ", 1)[0]
    assert "data/results/gpu/README.md" in performance and "No GPU has been measured" not in performance
    assert summary["machine"]["gpus"][0] in performance
