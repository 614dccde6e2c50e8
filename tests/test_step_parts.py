"""``benchmarks/step_parts.py``: a stage-2 step split into its parts, against a RotNet step."""

from __future__ import annotations

import json
import time

import pytest
import torch

from .helpers import REPO, benchmark_module, torch_threads


@pytest.fixture(scope="module")
def step_parts():
    with benchmark_module("step_parts") as module, torch_threads(1):
        yield module


def _snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [param.detach().clone() for param in module.parameters()]


def _changed(module: torch.nn.Module, before: list[torch.Tensor]) -> bool:
    return any(not torch.equal(param, old) for param, old in zip(module.parameters(), before, strict=True))


def test_each_part_updates_what_its_name_says_and_nothing_else(step_parts):
    torch.manual_seed(0)
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    built = step_parts.build_parts(str(REPO / "configs" / "official_stl10.yaml"), ["precision=fp32"], images,
                                   torch.device("cpu"))
    assert list(built.steps) == list(step_parts.PARTS)
    expected = {  # part -> (R changes, C changes, RotNet changes)
        "generator forward": (False, False, False),
        "stage 2, R not updated": (False, True, False),
        "stage 2": (True, True, False),
        "RotNet": (False, False, True),
    }
    for name, changes in expected.items():
        before = [_snapshot(built.repair), _snapshot(built.discriminator), _snapshot(built.rotnet)]
        built.steps[name]()
        after = tuple(_changed(module, old) for module, old in
                      zip((built.repair, built.discriminator, built.rotnet), before, strict=True))
        assert after == changes, name
    # RotNet took the stage-2 config's trunk and optimiser keys
    assert built.rotnet_config.disc_init == "official" and built.rotnet_config.beta1 == 0.5


def test_the_updates_of_c_and_r_are_the_differences_of_the_timed_steps(step_parts):
    seconds = {"stage 2": 1.0, "stage 2, R not updated": 0.4, "generator forward": 0.1, "RotNet": 0.5}
    rows = step_parts.summarise(seconds, batch=128)
    assert rows["C's update"]["seconds_per_step"] == pytest.approx(0.3)
    assert rows["R's update"]["seconds_per_step"] == pytest.approx(0.6)
    assert rows["stage 2"]["x_rotnet"] == pytest.approx(2.0)
    assert rows["RotNet"]["images_per_s"] == pytest.approx(256.0)
    assert rows["R's update"]["share_of_stage2"] == pytest.approx(0.6)
    table = step_parts.format_table(rows, "heading")
    assert "| R's update | 0.600 | 60% | - | 1.20 |" in table
    assert "| RotNet | 0.500 | 50% | 256 | 1.00 |" in table


def test_measure_takes_the_median_round_of_each_part(step_parts):
    calls = {"a": 0}

    def slow_once() -> None:  # one slow round out of three: the median ignores it
        calls["a"] += 1
        if calls["a"] == 2:
            time.sleep(0.2)

    seconds = step_parts.measure({"a": slow_once}, rounds=3, steps=1, device=torch.device("cpu"), warmup=0)
    assert seconds["a"] < 0.1


def test_the_command_writes_its_figures_and_rejects_zero_rounds(step_parts, tmp_path):
    out = tmp_path / "parts.json"
    result = step_parts.main(["--image-size", "32", "--batch-size", "2", "--rounds", "1", "--steps", "1",
                              "--set", "precision=fp32", "--json", str(out)])
    written = json.loads(out.read_text())
    assert written["parts"].keys() == result["parts"].keys() >= {"C's update", "R's update", "RotNet"}
    assert all(row["seconds_per_step"] > 0 for name, row in written["parts"].items()
               if name not in ("C's update", "R's update"))
    with pytest.raises(SystemExit):
        step_parts.main(["--rounds", "0"])
