"""The benchmark harness in its tiny configuration: output file correctness, never timing."""

import json

import matplotlib
import pytest

from c3a_tutorial.experiments import bench

matplotlib.use("Agg")


def test_tiny_cli_writes_complete_json_and_plot(tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench.main(["--tiny", "--out", str(out)])
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
    assert "c3a-b16" in capsys.readouterr().out
    # --show re-plots and re-prints a stored file without running anything.
    bench.main(["--show", str(out), "--plot", str(tmp_path / "again.png")])
    assert (tmp_path / "again.png").stat().st_size > 1000
    assert "c3a-b16" in capsys.readouterr().out


def test_targets_are_computed_from_rows():
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

    rows = [row("lora-r8", 1.0, 128), row("c3a-b4", 1.2, 16), row("peft-c3a-b4", 3.0, 16), row("c3a-b2", 0.5, 32)]
    targets = bench.check_targets(rows)
    peft = [t for t in targets if t["target"].startswith("peft")]
    assert len(peft) == 1 and peft[0]["ratio"] == pytest.approx(2.5) and peft[0]["met"]
    lora = [t for t in targets if t["target"].startswith("ours")]
    assert lora[0]["method"] == "c3a-b2" and lora[0]["ratio"] == pytest.approx(0.5) and lora[0]["met"]
    assert not [t for t in bench.check_targets([dict(r, tokens=512) for r in rows]) if t["target"].startswith("ours")]


def test_skips_block_sizes_that_do_not_divide(tmp_path):
    result = bench.run_benchmark(
        shapes=[(24, 24)], tokens=[4], methods=["c3a-b16", "c3a-b8"], repeats=1, warmup=0, progress=False
    )
    assert {r["method"] for r in result["results"]} == {"base", "c3a-b8"}
    assert any("c3a-b16" in s for s in result["skipped"])


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
