"""A train-spot run's C starts as the random-init baseline of its seed (``--init random``, the ``random_official``
row of ``reproduce``): the network its best-layer gain is measured against, whatever else the run builds first."""

from __future__ import annotations

import pytest
import torch

from spotart.config import SpotConfig
from spotart.evaluation.backbones import load_backbone
from spotart.models import AutoEncoder
from spotart.models.generator import ArtifactGenerator
from spotart.train.device import Runtime
from spotart.train.stage2 import build_models

CPU = Runtime(torch.device("cpu"), None, False)
SIZE = 64


def start_trunk(seed: int, disc_init: str, repair: str, stream_seed: int = 99) -> dict[str, torch.Tensor]:
    cfg = SpotConfig(image_size=SIZE, precision="fp32", seed=seed, disc_init=disc_init, disc_padding="tf_same",
                     repair=repair)
    autoencoder = AutoEncoder()
    torch.manual_seed(stream_seed)  # whatever the shared random stream holds when the run builds its networks
    return build_models(cfg, autoencoder, CPU).discriminator.trunk.state_dict()


@pytest.mark.parametrize("repair", ["masked", "none"])
@pytest.mark.parametrize("disc_init", ["default", "normal", "official"])
def test_c_starts_as_the_random_baseline_of_its_seed(disc_init, repair):
    started = start_trunk(3, disc_init, repair)
    baseline = load_backbone(None, "random", SIZE, seed=3,
                             random_config={"disc_init": disc_init, "disc_padding": "tf_same"}).net.state_dict()
    assert started.keys() == baseline.keys()
    differing = [name for name in baseline if not torch.equal(started[name], baseline[name])]
    assert differing == []


def test_c_depends_on_its_seed_only():
    reference = start_trunk(3, "official", "masked")
    other_stream = start_trunk(3, "official", "masked", stream_seed=7)
    other_seed = start_trunk(4, "official", "masked")
    assert all(torch.equal(reference[name], other_stream[name]) for name in reference)
    assert not torch.equal(reference["conv1.weight"], other_seed["conv1.weight"])


def test_drawing_c_leaves_the_shared_stream_to_the_networks_after_it():
    # the repair network and everything after build_models draw what they drew before C had its own seed
    cfg = SpotConfig(image_size=SIZE, precision="fp32", seed=3, disc_init="official", disc_padding="tf_same")
    autoencoder = AutoEncoder()
    torch.manual_seed(11)
    build_models(cfg, autoencoder, CPU)
    after_build = torch.rand(4)
    torch.manual_seed(11)
    ArtifactGenerator(autoencoder, cfg.repair, cfg.drop_rate, cfg.passes, cfg.repair_init)
    after_generator_only = torch.rand(4)
    assert torch.equal(after_build, after_generator_only)
