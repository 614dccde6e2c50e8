"""The frozen autoencoder stays frozen; every trainable parameter of C and R receives a gradient."""

import pytest
import torch

from spotart.config import SpotConfig
from spotart.models import ArtifactGenerator, AutoEncoder
from spotart.train.device import Runtime
from spotart.train.stage2 import build_models, spot_step


def _trained_looking_autoencoder() -> AutoEncoder:
    ae = AutoEncoder()
    ae.train()
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        ae(torch.rand(8, 3, 32, 32) * 2 - 1)
    return ae


def _cfg(**kw) -> SpotConfig:
    base = dict(image_size=32, batch_size=4, steps=2, precision="fp32", channels_last="off")
    base.update(kw)
    return SpotConfig(**base)


def _snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("repair,passes,objective", [("masked", 1, "paper"), ("unmasked", 1, "paper"),
                                                      ("masked", 2, "paper"), ("masked", 1, "paper_plus_c"),
                                                      ("masked", 1, "official"), ("none", 1, "paper")])
def test_autoencoder_gets_no_gradient_and_does_not_change(repair, passes, objective):
    ae = _trained_looking_autoencoder()
    before = _snapshot(ae)
    cfg = _cfg(repair=repair, passes=passes, repair_loss=objective)
    models = build_models(cfg, ae, Runtime(torch.device("cpu"), None, False))
    models.generator.train()  # must keep the frozen autoencoder in eval mode
    assert not ae.training
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    for step in range(2):
        spot_step(models, x, cfg, Runtime(torch.device("cpu"), None, False), step)
    assert all(p.grad is None for p in ae.parameters())
    assert all(not p.requires_grad for p in ae.parameters())
    after = ae.state_dict()
    for key, value in before.items():  # weights and BatchNorm running statistics alike
        assert torch.equal(value, after[key]), key


@pytest.mark.parametrize("repair,passes,extra", [("masked", 1, {}), ("unmasked", 1, {}), ("masked", 2, {}),
                                                  ("masked", 1, {"repair_init": "official", "disc_init": "official",
                                                                 "disc_padding": "tf_same", "fc1_bn_scale": False,
                                                                 "repair_loss": "official"})])
def test_every_trainable_parameter_receives_a_gradient(repair, passes, extra):
    cfg = _cfg(repair=repair, passes=passes, **{"repair_init": "default", **extra})
    runtime = Runtime(torch.device("cpu"), None, False)
    models = build_models(cfg, _trained_looking_autoencoder(), runtime)
    grads = {}
    for opt_name in ("opt_c", "opt_r"):
        opt = getattr(models, opt_name)
        original = opt.step
        opt.step = lambda *a, _o=opt, _orig=original, **k: (grads.update(  # capture gradients before the update
            {id(p): p.grad.clone() for g in _o.param_groups for p in g["params"] if p.grad is not None}), _orig())[1]
    spot_step(models, torch.rand(4, 3, 32, 32) * 2 - 1, cfg, runtime, step=0)
    named = list(models.discriminator.named_parameters()) + list(models.generator.repair.named_parameters())
    missing = [n for n, p in named if p.requires_grad and (id(p) not in grads or grads[id(p)].abs().sum() == 0)]
    assert not missing, f"no gradient for {missing}"


def test_zero_initialised_repair_starts_as_pure_damage():
    ae = _trained_looking_autoencoder().eval()
    gen_a = ArtifactGenerator(ae, repair="masked", repair_init="identity")
    gen_b = ArtifactGenerator(ae, repair="none")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    a = gen_a(x, torch.Generator().manual_seed(1))
    b = gen_b(x, torch.Generator().manual_seed(1))
    assert torch.equal(a.keep_mask, b.keep_mask)
    assert torch.allclose(a.fake, b.fake)
    assert torch.allclose(a.real, ae(x))  # "real" images are the frozen reconstructions


def test_two_passes_combine_the_keep_masks():
    ae = _trained_looking_autoencoder().eval()
    one = ArtifactGenerator(ae, passes=1, drop_rate=0.5)(torch.zeros(64, 3, 32, 32))
    two = ArtifactGenerator(ae, passes=2, drop_rate=0.5)(torch.zeros(64, 3, 32, 32))
    assert abs(one.keep_mask.mean().item() - 0.5) < 0.1
    assert abs(two.keep_mask.mean().item() - 0.25) < 0.1  # kept only if kept in both passes
