"""``benchmarks/gains.py``: probe gains over the random init a row started from, per seed and file."""

from __future__ import annotations

import json

import pytest

from .helpers import benchmark_module


@pytest.fixture(scope="module")
def gains():
    with benchmark_module("gains") as module:
        yield module


def _probe(*top1):
    return {f"conv{i + 1}": value for i, value in enumerate(top1)}


def _write(path, table):
    path.write_text(json.dumps(table))
    return path


def test_gains_pair_each_seed_with_the_random_row_of_the_same_file(gains, tmp_path, capsys):
    first = _write(tmp_path / "a.json", {
        "random": {"0": _probe(50, 50, 50, 50, 50.0)},
        "trained": {"0": _probe(51, 52, 53, 54, 54.05)},
    })
    # a second session: the same row at another seed, against that session's own random init
    second = _write(tmp_path / "b.json", {
        "random": {"1": _probe(40, 40, 40, 40, 40.0)},
        "trained": {"1": _probe(42, 41, 40, 39, 43.0)},
    })
    assert gains.main(["--seeds-json", str(first), "--seeds-json", str(second), "--row", "trained=random"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # 54.05 - 50 = 4.05 reads +4.1 (halves away from zero), not the +4.0 of binary rounding
    assert "| trained | 0 | +4.1 (conv5 vs conv1) | +1.0 | +2.0 | +3.0 | +4.0 | +4.1 | conv5 +4.1 |" in lines
    assert "| trained | 1 | +3.0 (conv5 vs conv1) | +2.0 | +1.0 | +0.0 | -1.0 | +3.0 | conv5 +3.0 |" in lines
    # means over the two seeds; both headline gains 4.05 and 3.0 here: mean 3.525, sample sd 0.742
    assert "| trained | 2 | +3.5 ± 0.7 | +1.5 | +1.5 | +1.5 | +1.5 | +3.5 | +3.5 ± 0.7 |" in lines


def test_the_best_layer_gain_compares_best_with_best_whichever_layers_they_are(gains, tmp_path, capsys):
    """A random AlexNet probing best at conv2 and a trained one whose conv5 gained most: the guide's figure is
    59 - 60, not conv5's +18."""
    path = _write(tmp_path / "a.json", {"random": {"0": _probe(55, 60, 50, 45, 40)},
                                        "trained": {"0": _probe(56, 59, 57, 55, 58)}})
    assert gains.main(["--seeds-json", str(path), "--row", "trained=random"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "| trained | 0 | -1.0 (conv2 vs conv2) | +1.0 | -1.0 | +7.0 | +10.0 | +18.0 | conv5 +18.0 |" in lines
    assert "| trained | 1 | -1.0 ± n/a | +1.0 | -1.0 | +7.0 | +10.0 | +18.0 | +18.0 ± n/a |" in lines


def test_a_repeated_row_and_seed_is_read_from_the_first_file(gains, tmp_path, capsys):
    first = _write(tmp_path / "a.json", {"random": {"0": _probe(1, 1, 1, 1, 1)}, "row": {"0": _probe(2, 2, 2, 2, 2)}})
    repeat = _write(tmp_path / "b.json", {"random": {"0": _probe(1, 1, 1, 1, 1)}, "row": {"0": _probe(5, 5, 5, 5, 5)}})
    assert gains.main(["--seeds-json", str(first), "--seeds-json", str(repeat), "--row", "row=random"]) == 0
    captured = capsys.readouterr()
    assert "| row | 0 | +1.0 (conv1 vs conv1) | +1.0 | +1.0 | +1.0 | +1.0 | +1.0 | conv1 +1.0 |" in captured.out
    assert "| row | 1 |" in captured.out  # the summary counts one seed, not two
    assert "row seed 0 is also in" in captured.err and "b.json" in captured.err


def test_one_seed_has_no_spread(gains, tmp_path, capsys):
    path = _write(tmp_path / "a.json", {"random": {"0": _probe(1, 1, 1, 1, 1)}, "row": {"0": _probe(1, 3, 1, 1, 1)}})
    assert gains.main(["--seeds-json", str(path), "--row", "row=random"]) == 0
    assert "| row | 1 | +2.0 ± n/a | +0.0 | +2.0 | +0.0 | +0.0 | +0.0 | +2.0 ± n/a |" in capsys.readouterr().out


@pytest.mark.parametrize(("table", "row", "message"), [
    ({"row": {"0": _probe(1, 1, 1, 1, 1)}}, "row=random", "has row but not its random-init row random"),
    ({"random": {"1": _probe(1, 1, 1, 1, 1)}, "row": {"0": _probe(1, 1, 1, 1, 1)}}, "row=random",
     "random has no seed 0 (probe it with --seeds 0)"),
    ({"random": {"0": _probe(1, 1, 1, 1, 1)}}, "missing=random", "row missing is in none of"),
    ({"random": {}}, "no_separator", "expected NAME=RANDOM"),
])
def test_unpairable_rows_are_named(gains, tmp_path, capsys, table, row, message):
    path = _write(tmp_path / "a.json", table)
    assert gains.main(["--seeds-json", str(path), "--row", row]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_or_broken_file_is_named(gains, tmp_path, capsys):
    assert gains.main(["--seeds-json", str(tmp_path / "none.json"), "--row", "a=b"]) == 2
    assert "none.json: no such file" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert gains.main(["--seeds-json", str(broken), "--row", "a=b"]) == 2
    assert "broken.json: not JSON" in capsys.readouterr().err
