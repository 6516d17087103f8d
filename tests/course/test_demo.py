"""``python -m c3a_tutorial.demo``: neutral targets, the exact and the Adam fits, a takeaway drawn from the numbers."""

from c3a_tutorial.course import demo


def test_demo_prints_exact_and_adam_fits_and_a_takeaway(capsys):
    rows = demo.main(["--dim", "32", "--block-sizes", "4", "8", "--steps", "60"])
    out = capsys.readouterr().out
    assert {name for name, *_ in rows} == set(demo.TARGETS)
    for _, c3a, lora, c3a_adam, lora_adam in rows:
        assert c3a.parameters >= lora.parameters  # LoRA gets at most C3A's budget
        assert c3a.relative_error <= c3a_adam.relative_error + 1e-6  # the exact fit is the optimum
        assert lora.relative_error <= lora_adam.relative_error + 1e-6
    assert "favours C3A by construction" in out
    takeaway = out.strip().splitlines()[-1]
    assert takeaway.startswith("Takeaway:") and "shift-structured" in takeaway.split("C3A on")[1]
    assert "random" in takeaway.split("C3A on")[0]


def test_takeaway_follows_the_numbers():
    class Fit:
        def __init__(self, error):
            self.relative_error = error

    rows = [("a", Fit(0.1), Fit(0.2), None, None), ("b", Fit(0.9), Fit(0.2), None, None),
            ("c", Fit(0.1), Fit(0.2), None, None), ("c", Fit(0.9), Fit(0.2), None, None)]  # fmt: skip
    line = demo.takeaway(rows)
    assert "LoRA fit better on b; C3A on a; it depended on the budget for c" in line
