"""The benchmark harness in its tiny configuration: output file correctness, never timing."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import matplotlib
import pytest
import torch

from c3a_tutorial.experiments import bench, bench_cli, profile

from ..bad_input import unwritable_directory

matplotlib.use("Agg")
REPO = Path(__file__).resolve().parents[2]


def test_tiny_cli_writes_complete_json_and_plot(tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench_cli.main(["--tiny", "--out", str(out)])
    result = bench.load_results(out)
    assert (tmp_path / "bench.png").stat().st_size > 1000
    assert result["format"] == bench.FORMAT
    assert result["machine"]["device"] == "cpu" and result["versions"]["torch"]
    methods = ["base", *result["config"]["methods"]]
    assert "lora-r8" in methods and "c3a-b16" in methods
    cells = {(r["d_out"], r["d_in"], r["tokens"]) for r in result["results"]}
    assert cells == {(64, 64, 32), (64, 64, 128), (128, 64, 32), (128, 64, 128)}
    for cell in cells:
        rows = {r["method"]: r for r in result["results"] if (r["d_out"], r["d_in"], r["tokens"]) == cell}
        assert sorted(rows) == sorted(methods)
        base = rows["base"]
        for row in rows.values():
            assert row["repeats"] == len(row["times_ms"]) == 3
            assert all(t > 0 for t in row["times_ms"])
            assert row["base_median_ms"] == base["median_ms"]
            assert row["overhead_ratio"] == pytest.approx(row["overhead_ms"] / base["median_ms"])
        # Parameter counts follow the formulas: LoRA r(d_in + d_out), C3A d_out d_in / b.
        d_out, d_in, _ = cell
        assert rows["lora-r8"]["parameters"] == 8 * (d_in + d_out)
        assert rows["c3a-b16"]["parameters"] == d_out * d_in // 16
        # Autograd keeps only the input for our C3A (the kernel is a parameter); LoRA keeps x A^T too.
        assert rows["c3a-b16"]["saved_for_backward_bytes"] == 0
        assert rows["lora-r8"]["saved_for_backward_bytes"] == cell[2] * 8 * 4
    json.dumps(result)  # JSON-able through and through
    printed = capsys.readouterr().out
    assert "c3a-b16" in printed
    # A user's run reports measurements, not this project's acceptance targets.
    assert "target" not in printed and "NOT met" not in printed and "targets" not in result
    # --show re-plots and re-prints a stored file without running anything.
    bench_cli.main(["--show", str(out), "--plot", str(tmp_path / "again.png")])
    assert (tmp_path / "again.png").stat().st_size > 1000
    assert "c3a-b16" in capsys.readouterr().out


def _hashes(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_cli_without_out_writes_to_scratch_not_to_the_tracked_results(tmp_path, monkeypatch, capsys):
    """Run from a copy of the repository's layout: data/results/ keeps every byte, the run lands in runs/bench/."""
    results = tmp_path / "data" / "results"
    shutil.copytree(REPO / "data" / "results", results)
    before = _hashes(results)
    assert "bench_cpu.json" in before
    monkeypatch.chdir(tmp_path)
    bench_cli.main(["--tiny", "--repeats", "1", "--warmup", "0", "--methods", "c3a-b16"])
    assert _hashes(results) == before
    written = sorted((tmp_path / "runs" / "bench").glob("bench_cpu_tiny_*.json"))
    assert len(written) == 1 and bench.load_results(written[0])["results"]
    assert f"wrote {Path('runs', 'bench', written[0].name)}" in capsys.readouterr().out


def _usage_error(args, capsys) -> str:
    """Run the command line expecting a usage error: exit status 2 and exactly one line on stderr, which is returned."""
    with pytest.raises(SystemExit) as exc:
        bench_cli.main(args)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert captured.out == ""
    return lines[0]


def test_an_existing_file_is_replaced_only_with_force(tmp_path, capsys):
    out = tmp_path / "kept.json"
    out.write_text("precious")
    args = ["--tiny", "--repeats", "1", "--warmup", "0", "--methods", "c3a-b16", "--out", str(out)]
    assert "kept.json already exists: not overwriting it. Pass --force" in _usage_error(args, capsys)
    assert out.read_text() == "precious" and not (tmp_path / "kept.png").exists()
    bench_cli.main([*args, "--force"])
    assert bench.load_results(out)["format"] == bench.FORMAT
    plot = tmp_path / "kept.png"
    capsys.readouterr()
    assert "kept.png already exists" in _usage_error(["--show", str(out), "--plot", str(plot)], capsys)


@pytest.mark.parametrize("text", ['{"format": "c3a_tutorial.bench", "results": [', "not json at all", ""])
def test_show_on_a_broken_file_names_it_and_how_to_regenerate(tmp_path, text, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text(text)
    message = _usage_error(["--show", str(broken)], capsys)
    assert str(broken) in message and "truncated or not JSON" in message
    assert "python -m c3a_tutorial.bench --out" in message and "JSONDecodeError" not in message
    assert "--force" not in message  # not recognisably ours: never advise overwriting it
    with pytest.raises(ValueError, match="broken.json"):
        bench.load_results(broken)
    assert "does not exist" in _usage_error(["--show", str(tmp_path / "missing.json")], capsys)
    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text('{"format": "c3a_tutorial.bench"}')
    message = _usage_error(["--show", str(incomplete)], capsys)
    assert "incomplete.json' lacks machine, versions, config, results" in message and "--force" in message


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


# Every bad input of issue #18 (and a few more), one row each: arguments (with {tmp} for the test's folder), a
# fragment of the one-line message. Each must exit with status 2, print one line, and change nothing on disk.
BAD_INPUTS = [
    (["--show", "."], "is a folder, not a benchmark result file"),
    (["--show", "{tmp}/other.json"], "not a c3a_tutorial benchmark result"),
    (["--show", "{tmp}/bench_ok.json", "--plot", "{tmp}/other.json/x.png"], "is a file, so no folder"),
    (["--out", "{tmp}/readonly/b.json"], "is not writable"),
    (["--out", "{tmp}/ok.json", "--plot", "{tmp}/readonly/b.png"], "is not writable"),
    (["--out", "{tmp}/other.json/b.json"], "is a file, so no folder can be made there"),
    (["--out", "{tmp}/new.json", "--plot", "{tmp}/other.json/b.png"], "is a file, so no folder"),  # no JSON left
    (["--out", "{tmp}"], "is a folder: give a file name"),
    (["--out", "{unwritable}/b.json"], "is not writable"),  # probed: permission bits do not stop root
    (["--shapes", "0x0"], "both sides of a layer need at least one feature"),
    (["--shapes", "7x7"], "c3a-b16 on 7x7, peft-c3a-b16 on 7x7: the size does not fit"),
    (["--shapes", "64"], "is not a shape: write d_outxd_in"),
    (["--tokens", "-5"], "-5 is below 1"),
    (["--tokens", "0"], "0 is below 1"),
    (["--tokens", "many"], "'many' is not a whole number"),
    (["--methods", "lora-r0"], "its rank must be at least 1"),
    (["--methods", "c3a-b7"], "c3a-b7 on 64x64, c3a-b7 on 128x64: the size does not fit"),
    (["--methods", "c3a-b0"], "its block size must be at least 1"),
    (["--methods", "dora-r4"], "Unknown method 'dora-r4'"),
    (["--methods", "lora-r100"], "lora-r100 on 64x64"),
    (["--repeats", "0"], "0 is below 1"),
    (["--repeats", "-1"], "-1 is below 1"),
    (["--warmup", "-1"], "-1 is below 0"),
    (["--threads", "-1"], "-1 is below 1"),
    (["--threads", "0"], "0 is below 1"),
    (["--profile-repeats", "0"], "0 is below 1"),
    (["--time-budget", "-3"], "not a positive number of seconds"),
    (["--device", "tpu"], "--device tpu"),
    (["--dtype", "int8"], "invalid choice: 'int8'"),
]
if not torch.cuda.is_available():
    BAD_INPUTS += [
        (["--device", "cuda"], "--device cuda: Device 'cuda' was asked for but is not available here"),
        (["--device", "cuda", "--timer", "cpu"], "--device cuda"),
    ]


@pytest.mark.parametrize("args, fragment", BAD_INPUTS, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_every_bad_input_is_one_line_exit_2_and_nothing_changes(args, fragment, tmp_path, capsys, monkeypatch):
    (tmp_path / "other.json").write_text('{"mine": "not a benchmark"}')
    bench.save_results({"format": bench.FORMAT, "machine": {}, "versions": {}, "config": {}, "results": []},
                       tmp_path / "bench_ok.json")  # fmt: skip
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    monkeypatch.chdir(tmp_path)
    if os.access(readonly, os.W_OK) and any("readonly" in a for a in args):
        pytest.skip("running as a user who can write anywhere (root): an unwritable folder cannot be made")
    before = _tree(tmp_path)
    if any("{unwritable}" in a for a in args):
        unwritable = str(unwritable_directory(tmp_path))  # skips where every folder is writable
        args = [a.replace("{unwritable}", unwritable) for a in args]
        before = _tree(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    message = _usage_error(["--tiny", "--repeats", "1", "--warmup", "0", *args], capsys)
    assert message.startswith("python -m c3a_tutorial.bench: error: ")
    assert fragment in message
    assert _tree(tmp_path) == before  # nothing written, nothing replaced
    assert not (tmp_path / "runs").exists()


def test_targets_are_computed_from_rows_and_kept_out_of_results():
    def row(method, overhead, params, tokens=2048):
        spec = bench.parse_method(method)
        return {
            "d_out": 8,
            "d_in": 8,
            "tokens": tokens,
            "method": method,
            "kind": spec["kind"],
            "overhead_ms": overhead,
            "parameters": params,
        }

    rows = [row("lora-r8", 1.0, 128), row("c3a-b4", 1.2, 16), row("peft-c3a-b4", 3.0, 16), row("c3a-b2", 0.5, 256)]
    targets = bench.check_targets(rows)
    peft = [t for t in targets if t["target"].startswith("peft")]
    assert len(peft) == 1 and peft[0]["ratio"] == pytest.approx(2.5) and not peft[0]["met"]  # target: ≥ 3
    lora = [t for t in targets if t["target"].startswith("ours")]
    # c3a-b2 has more parameters than LoRA r=8: not compared.
    assert [t["method"] for t in lora] == ["c3a-b4"] and lora[0]["ratio"] == pytest.approx(1.2) and lora[0]["met"]
    assert not [t for t in bench.check_targets([dict(r, tokens=512) for r in rows]) if t["target"].startswith("ours")]


def test_skips_block_sizes_that_do_not_divide(tmp_path):
    result = bench.run_benchmark(
        shapes=[(24, 24)], tokens=[4], methods=["c3a-b16", "c3a-b8"], repeats=1, warmup=0, progress=False
    )
    assert {r["method"] for r in result["results"]} == {"base", "c3a-b8"}
    assert any("c3a-b16" in s for s in result["skipped"])
    assert "targets" not in result


def test_plot_and_errors(tmp_path):
    result = bench.run_benchmark(
        shapes=[(32, 32)], tokens=[8], methods=["lora-r2", "c3a-b8"], repeats=2, warmup=0, progress=False
    )
    fig, ax = bench.plot_benchmark(result)
    assert len(ax.patches) == 2
    assert "CPU" in ax.get_title()
    with pytest.raises(ValueError, match="Unknown method 'dora-r4'"):
        bench.parse_method("dora-r4")
    with pytest.raises(ValueError, match="No benchmark rows"):
        bench.plot_benchmark(result, tokens=999)
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="not a c3a_tutorial benchmark result"):
        bench.load_results(bad)


def test_cpu_timer_option():
    result = bench.run_benchmark(
        shapes=[(16, 16)], tokens=[4], methods=["c3a-b4"], repeats=2, warmup=0, progress=False, timer="cpu"
    )
    assert result["config"]["timer"] == "process cpu time"
    assert all(r["repeats"] == 2 for r in result["results"])
    with pytest.raises(ValueError, match="timer='gpu' is not one of"):
        bench.run_benchmark(shapes=[(16, 16)], tokens=[4], methods=["c3a-b4"], timer="gpu", progress=False)


def test_profile_splits_the_operator_time_and_restores_torch():
    originals = (torch.Tensor.copy_, torch.fft.rfft, torch.bmm, "copy_" in torch.Tensor.__dict__)
    p = profile.profile_operator(64, 32, 8, 40, repeats=2, warmup=1)
    assert (torch.Tensor.copy_, torch.fft.rfft, torch.bmm, "copy_" in torch.Tensor.__dict__) == originals
    assert (p["d_out"], p["d_in"], p["block_size"], p["tokens"]) == (64, 32, 8, 40)
    assert len(p["step_times_ms"]) == 2 and p["step_min_ms"] <= p["step_median_ms"] <= p["step_max_ms"]
    for phase in ("forward", "backward"):
        c = p[phase]
        assert c["fft_ms"] > 0 and c["gemm_ms"] > 0 and c["layout_ms"] > 0
        parts = c["fft_ms"] + c["gemm_ms"] + c["layout_ms"] + c["allocation_ms"] + c["python_ms"]
        assert parts == pytest.approx(c["total_ms"], rel=0.05)
        assert c["total_over_kernels"] >= 1
    assert any(op["op"] == "aten::_fft_r2c" for op in p["aten_ops"])
    with pytest.raises(ValueError, match="block size 7 does not divide 64x32"):
        profile.profile_operator(64, 32, 7, 4)


def test_profile_flag_adds_the_breakdown(tmp_path, capsys):
    out = tmp_path / "p.json"
    bench_cli.main(
        ["--tiny", "--repeats", "1", "--warmup", "0", "--profile", "--profile-repeats", "1", "--out", str(out)]
    )
    result = bench.load_results(out)
    assert {(p["d_out"], p["d_in"], p["tokens"], p["block_size"]) for p in result["profile"]} == {
        (64, 64, 32, 16),
        (64, 64, 128, 16),
        (128, 64, 32, 16),
        (128, 64, 128, 16),
    }
    assert "operator profile" in capsys.readouterr().out


def test_time_interleaved_rotates_the_order():
    calls = []
    times = profile.time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3} and all(t >= 0 for v in times.values() for t in v)
