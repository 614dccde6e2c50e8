"""The GPU fast path, where it can be checked on a CPU: the deferred (sync-free) NaN guard, steps that read
nothing back to the host, persistent loader workers that change no batch, and a run with ``gpu_augment``. The
same checks with ``torch.cuda.set_sync_debug_mode`` run where CUDA is present."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from spotart.config import AEConfig, SpotConfig, build_config
from spotart.data import Augment, training_loader
from spotart.models import AutoEncoder
from spotart.train.device import Runtime
from spotart.train.nonfinite import NonFiniteGuard, step_optimizer
from spotart.train.optimisation import make_adam
from spotart.train.stage1 import autoencoder_step, train_autoencoder
from spotart.train.stage2 import build_models, spot_step, train_spot

from ..helpers import torch_threads
from ..test_augment_device import _NoHostSync

CPU = Runtime(torch.device("cpu"), None, False)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _trainable_state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}


def test_deferred_guard_drops_the_update_on_the_device_and_reports_at_the_logged_row(caplog):
    model = AutoEncoder().train()
    optimizer = make_adam(model, AEConfig(precision="fp32"))
    guard = NonFiniteGuard(patience=3, deferred=True)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch_threads(1):
        autoencoder_step(model, images, optimizer, CPU, 30.0, guard, step=0)  # a finite step: Adam state exists
        before = _trainable_state(model)
        moments = {id(p): {k: v.clone() for k, v in s.items()} for p, s in optimizer.state.items()}
        with caplog.at_level(logging.WARNING, logger="spotart"):
            autoencoder_step(model, torch.full_like(images, float("nan")), optimizer, CPU, 30.0, guard, step=1)
            assert caplog.text == "" and guard.total == 0, "nothing is read back inside the step"
            guard.check(2)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items()), "the NaN update was not applied"
    for param, state in optimizer.state.items():
        assert all(torch.equal(v, moments[id(param)][k]) for k, v in state.items()), "moments and step unchanged"
    assert "steps 0-1: 1 step(s) with a non-finite loss, mse; their updates were skipped (last at step 1" \
        in caplog.text
    assert guard.total == 1 and guard.in_a_row == 1


def test_deferred_guard_gives_up_after_patience_steps_in_a_row():
    model = AutoEncoder().train()
    optimizer = make_adam(model, AEConfig(precision="fp32"))
    guard = NonFiniteGuard(patience=3, deferred=True)
    nan = torch.full((2, 3, 32, 32), float("nan"))
    with torch_threads(1):
        for step in range(2):
            autoencoder_step(model, nan, optimizer, CPU, 30.0, guard, step)
        guard.check(2)  # two in a row: below patience
        autoencoder_step(model, nan, optimizer, CPU, 30.0, guard, 2)  # the third, counted across the check
        with pytest.raises(FloatingPointError, match="3 steps in a row had a non-finite loss"):
            guard.check(3)


def test_deferred_and_immediate_guards_train_identically_on_finite_losses():
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    results = []
    with torch_threads(1):
        for deferred in (False, True):
            torch.manual_seed(0)
            model = AutoEncoder().train()
            optimizer = make_adam(model, AEConfig(precision="fp32"))
            guard = NonFiniteGuard(deferred=deferred)
            for step in range(2):
                autoencoder_step(model, images, optimizer, CPU, 30.0, guard, step)
            results.append(model.state_dict())
    assert all(torch.equal(v, results[1][k]) for k, v in results[0].items())


def test_step_optimizer_without_the_fused_kernel_decides_on_the_host():
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([param], lr=0.5)
    param.grad = torch.ones(3)
    step_optimizer(optimizer, torch.tensor(1.0))
    assert torch.equal(param.detach(), torch.ones(3))
    step_optimizer(optimizer, torch.tensor(0.0))
    assert torch.equal(param.detach(), torch.full((3,), 0.5))


def _stage2_step(runtime: Runtime, size: int = 32, batch: int = 4):
    cfg = SpotConfig(image_size=size, precision="fp32")
    models = build_models(cfg, AutoEncoder(), runtime)
    models.generator.train()
    models.discriminator.train()
    images = runtime.to_device(torch.rand(batch, 3, size, size) * 2 - 1)
    masks = torch.Generator(device=runtime.device).manual_seed(0)
    guard = NonFiniteGuard.for_device(runtime.device) if runtime.device.type == "cuda" else NonFiniteGuard(
        deferred=True)
    return lambda step=1: spot_step(models, images, cfg, runtime, step, masks, guard), guard


def test_a_stage2_step_reads_nothing_back_to_the_host(monkeypatch):
    """With the deferred guard, a step is device work only: losses, metrics and the skip flag stay tensors."""
    with torch_threads(1):
        step, guard = _stage2_step(CPU)
        step()  # first step: optimiser state, lazy initialisation
        with _NoHostSync(monkeypatch):
            result = step(2)
        assert result.updated_repair
        assert all(isinstance(v, torch.Tensor) and v.device.type == "cpu" for v in result.losses.values())
        assert all(isinstance(v, torch.Tensor) for v in result.metrics.values())
        guard.check(3)  # reading back is allowed here, once per logged row
        assert guard.total == 0


def test_a_stage1_step_reads_nothing_back_to_the_host(monkeypatch):
    model = AutoEncoder().train()
    optimizer = make_adam(model, AEConfig(precision="fp32"))
    guard = NonFiniteGuard(deferred=True)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch_threads(1):
        autoencoder_step(model, images, optimizer, CPU, 30.0, guard, 0)
        with _NoHostSync(monkeypatch):
            losses, _ = autoencoder_step(model, images, optimizer, CPU, 30.0, guard, 1)
    assert isinstance(losses["loss"], torch.Tensor)


@CUDA
def test_on_cuda_steps_and_the_device_augmentation_never_synchronise():
    from spotart.bench import _runtime
    from spotart.data.augment_device import DeviceAugment

    runtime = _runtime("auto", "auto", torch.device("cuda"))
    step, guard = _stage2_step(runtime, size=64, batch=8)
    model = AutoEncoder().to("cuda", memory_format=runtime.memory_format).train()
    optimizer = make_adam(model, AEConfig())
    ae_guard = NonFiniteGuard.for_device(runtime.device)
    images = runtime.to_device(torch.rand(8, 3, 64, 64) * 2 - 1)
    canvas = torch.randint(0, 256, (8, 3, 80, 80), dtype=torch.uint8, device="cuda")
    extents = torch.tensor([[80, 80, 80, 80]] * 8, device="cuda")
    augment = DeviceAugment(Augment(64))
    step(), autoencoder_step(model, images, optimizer, runtime, 30.0, ae_guard, 0), augment(canvas, extents, 0)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step(2)
        autoencoder_step(model, images, optimizer, runtime, 30.0, ae_guard, 1)
        augment(canvas, extents, 1)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    guard.check(3)
    ae_guard.check(2)
    assert guard.total == 0 and ae_guard.total == 0


def test_persistent_workers_change_no_batch(image_folder):
    def epochs(workers: int) -> list[torch.Tensor]:
        cfg = build_config("train-ae", set_pairs=[f"data={image_folder}", "image_size=32", "batch_size=4",
                                                  "steps=8", f"num_workers={workers}"])
        loader, sampler, _ = training_loader(cfg)
        assert loader.persistent_workers == (workers > 0)
        seen = []
        for epoch, start in ((0, 0), (1, 0), (1, 2)):  # two epochs, then a resume two batches into the second
            sampler.set_epoch(epoch, start_batch=start)
            seen += [batch["images"] for batch in loader]
        return seen

    with torch_threads(1):
        plain, persistent = epochs(0), epochs(1)
    assert len(plain) == len(persistent) == 4 + 4 + 2
    assert all(torch.equal(a, b) for a, b in zip(plain, persistent))
    assert not torch.equal(plain[0], plain[4]), "each epoch is shuffled anew"
    assert torch.equal(plain[6], plain[8]) and torch.equal(plain[7], plain[9]), "the resume starts mid-epoch"


def test_both_stages_train_with_gpu_augment(tmp_path, image_folder):
    fast = ["num_workers=0", "progress=false", "log_every=1", "image_every=100", "checkpoint_every=2",
            "precision=fp32", "gpu_augment=true", f"data={image_folder}", "image_size=32", "batch_size=4",
            "steps=2"]
    with torch_threads(1):
        ae = train_autoencoder(build_config("train-ae", set_pairs=fast), str(tmp_path / "ae"))
        train_spot(build_config("train-spot", set_pairs=fast + [f"autoencoder={ae}"]), str(tmp_path / "spot"))
    for run, key in (("ae", "loss"), ("spot", "c_loss")):
        rows = [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [1, 2] and all(r[key] > 0 for r in rows)
