"""``MetricAverager``: interval means of tensor and number metrics, read back only when a row is logged."""

from __future__ import annotations

import pytest
import torch

from spotart.train.session import MetricAverager


def test_means_over_the_interval_then_reset():
    averager = MetricAverager()
    averager.add({"loss": torch.tensor(1.0), "acc": 0.5})
    averager.add({"loss": torch.tensor(3.0, dtype=torch.bfloat16), "acc": 1.0})
    assert isinstance(averager.sums["loss"], torch.Tensor)  # summed as a tensor, not read back per step
    assert averager.means() == {"loss": pytest.approx(2.0), "acc": pytest.approx(0.75)}
    averager.add({"loss": torch.tensor(5.0)})
    assert averager.means() == {"loss": pytest.approx(5.0)}


def test_metrics_logged_only_some_steps_average_over_their_own_count():
    averager = MetricAverager()
    averager.add({"c_loss": torch.tensor(2.0)})
    averager.add({"c_loss": torch.tensor(4.0), "r_loss": torch.tensor(10.0)})  # R updated on one step of two
    assert averager.means() == {"c_loss": pytest.approx(3.0), "r_loss": pytest.approx(10.0)}
