"""``python -m c3a_tutorial.demo``'s bad inputs, in one table: exit status 2, one line that names the command
and says what to change, nothing fitted, nothing written (issue #18). A new option's bad values join the table."""

import pytest

from c3a_tutorial.course import demo

from ..bad_input import assert_usage_error

BAD_INPUTS = [  # (argv, what the one-line error must say)
    (["--dim", "0"], "argument --dim: 0 is below 1"),
    (["--dim", "-4"], "argument --dim: -4 is below 1"),
    (["--dim", "x"], "argument --dim: 'x' is not a whole number"),
    (["--dim", "7"], "--block-sizes 8 16 32: a block size must divide --dim 7; valid here: [1, 7]"),
    (["--dim", "193"], "must divide --dim 193; valid here: [1, 193]"),
    (["--dim", "1000"], "--block-sizes 16 32: a block size must divide --dim 1000"),  # 8 fits: it failed after 24 s
    (["--block-sizes", "0"], "argument --block-sizes: 0 is below 1"),
    (["--block-sizes", "5"], "--block-sizes 5: a block size must divide --dim 128"),
    (["--block-sizes", "256"], "--block-sizes 256: a block size must divide --dim 128"),
    (["--steps", "0"], "argument --steps: 0 is below 1"),  # "after 0 Adam steps" was printed
    (["--steps", "-1"], "argument --steps: -1 is below 1"),
    (["--seed", "-1"], "argument --seed: -1 is below 0"),  # every target was skipped, exit 0
]


@pytest.mark.parametrize("argv, fragment", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_status_2_and_nothing_done(tmp_path, monkeypatch, capsys, argv, fragment):
    def never(*args, **kwargs):
        raise AssertionError("the demo started fitting despite a bad input")

    for name in ("fit_update", "best_c3a_fit", "best_lora_fit", "make_target"):
        monkeypatch.setattr(demo, name, never)
    monkeypatch.chdir(tmp_path)
    assert_usage_error(demo.main, argv, "python -m c3a_tutorial.demo", fragment, tmp_path, capsys)
    assert list(tmp_path.iterdir()) == []


def test_usage_names_the_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: python -m c3a_tutorial.demo ")
