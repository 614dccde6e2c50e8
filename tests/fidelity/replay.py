"""Replay one official training step in spotart and name every tensor as the official TF graph names it.

The fixtures (``../shared/fixtures/official_tf/``, README there) hold one step of each stage of the authors' code:
the variables before, the random draws, every intermediate tensor, the losses, the gradients that reach Adam and the
variables after. ``replay_stage2`` / ``replay_stage1`` load the variables into spotart's networks as the official
presets build them (``configs/official_stl10.yaml`` / ``official_stl10_ae.yaml`` at the fixtures' 64 px and batch
of 4), inject the fixtures' draws (the image batch, the keep mask, C's dropout mask), run spotart's own step function
(``spot_step`` / ``autoencoder_step``) and return what spotart computed under the official names, in TF's layouts
(NHWC, HWIO), so that a test compares two dicts.

What is compared where the two codes hold a quantity differently:

- **Gradients.** TF's ``grad/<variable>`` is what ``apply_gradients`` receives: the loss gradient plus the L2 term's
  (``weight_decay * w``), bias gradients doubled. spotart's ``.grad`` after its step holds the loss gradient with the
  bias factor applied; its coupled weight decay adds ``weight_decay * w`` inside Adam. The replay reports ``.grad +
  weight_decay * w`` for every parameter Adam decays, i.e. the gradient Adam acts on.
- **L2 terms and totals.** spotart's losses hold no L2 (its optimiser applies it as coupled weight decay); the replay
  reports each official L2 term as ``weight_decay / 2 * sum(w^2)`` of spotart's weights and the official totals as
  spotart's loss plus all of them (the frozen autoencoder's terms are constants in both codes).
- **One tower.** The fixtures ran one tower, whose L2 nothing halves: the replay sets ``weight_decay=5e-5``
  (the presets' 2.5e-5 is the official two-tower run's effective value, FIDELITY.md D6).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spotart.config import build_config
from spotart.models import AutoEncoder
from spotart.models.damage import fill_features, keep_from_uniform, upsample_mask
from spotart.official import convert_official, export_official, load_into, read_official_file
from spotart.train.device import Runtime, resolve_gemm_weight_grads, resolve_precision
from spotart.train.optimisation import lr_factor, make_adam
from spotart.train.stage1 import autoencoder_step
from spotart.train.stage2 import build_models, spot_step

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("SPOTART_OFFICIAL_FIXTURES", REPO.parent / "shared" / "fixtures" / "official_tf"))
STAGE2_PRESET = REPO / "configs" / "official_stl10.yaml"
STAGE1_PRESET = REPO / "configs" / "official_stl10_ae.yaml"
ONE_TOWER_L2 = 5e-5  # SpotNet.py:15,33, AlexNet.py:6,22, AutoEncoder.py:8: w_reg, not halved with one tower
IMAGE_SIZE, BATCH = 64, 4


def fixtures_present() -> bool:
    return (FIXTURES / "stage2_step.npz").is_file()


@functools.lru_cache(maxsize=None)
def fixture(name: str) -> dict[str, np.ndarray]:
    """A fixture file's arrays (``stage2_step`` ...), read once per process."""
    with np.load(FIXTURES / f"{name}.npz") as data:
        return {key: data[key] for key in data.files}


@functools.lru_cache(maxsize=None)
def fixture_variables(name: str) -> dict[str, np.ndarray]:
    """A ``*_before`` file with its bfloat16-stored kernels decoded."""
    return read_official_file(FIXTURES / f"{name}.npz")


def nchw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).contiguous()


def nhwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().permute(0, 2, 3, 1).contiguous().numpy()


def numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


class FixedDropout(nn.Module):
    """C's dropout with the official draw: ``where(keep, 2 x, 0)`` (``tf.nn.dropout``, rate 0.5)."""

    def __init__(self, keep: torch.Tensor) -> None:
        super().__init__()
        self.keep = keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(self.keep, x * 2.0, torch.zeros_like(x)) if self.training else x


class Recorder:
    """Forward outputs (and inputs) of modules, in call order; tensors cloned at once, before in-place ops."""

    def __init__(self) -> None:
        self.outputs: dict[str, list[torch.Tensor]] = {}
        self.inputs: dict[str, list[tuple]] = {}
        self.handles: list = []

    def output_of(self, name: str, module: nn.Module) -> None:
        def hook(_module, _args, out):
            self.outputs.setdefault(name, []).append(out.detach().clone() if torch.is_tensor(out) else out)

        self.handles.append(module.register_forward_hook(hook))

    def input_of(self, name: str, module: nn.Module) -> None:
        def hook(_module, args):
            self.inputs.setdefault(name, []).append(tuple(a.detach().clone() for a in args if torch.is_tensor(a)))

        self.handles.append(module.register_forward_pre_hook(hook))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def batch_moments(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A BatchNorm input's batch mean and Bessel-corrected variance per channel (TF's ``FusedBatchNormV3:1`` and
    ``:2``), of a (N, C, ...) tensor."""
    dims = [0] + list(range(2, x.dim()))
    return numpy(x.double().mean(dims)), numpy(x.double().var(dims, unbiased=True))


def l2_key(variable: str) -> str:
    """The official L2 term's tensor name of a variable: ``tower_0/<scope>/kernel/Regularizer/l2_regularizer:0``,
    the repair blocks past the first living in ``generator_i`` scopes."""
    scope, leaf = variable.rsplit("/", 1)
    kind = "kernel" if leaf == "weights" else "bias"
    parts = scope.split("/")
    if parts[0] == "generator" and parts[1] != "repair_0":
        parts[0] = f"generator_{parts[1].split('_')[1]}"
    return f"tower_0/{'/'.join(parts)}/{kind}/Regularizer/l2_regularizer:0"


def l2_terms(variables: dict[str, np.ndarray], decayed: set[str], weight_decay: float) -> dict[str, float]:
    return {l2_key(name): float(weight_decay / 2 * np.sum(variables[name].astype(np.float32) ** 2, dtype=np.float32))
            for name in sorted(decayed)}


def adam_gradients(states: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                   before: dict[str, dict[str, torch.Tensor]]) -> dict[str, np.ndarray]:
    """What each Adam acts on, per official variable: ``.grad`` plus the coupled weight decay's ``wd * w``."""
    grads: dict[str, dict[str, torch.Tensor]] = {}
    for part, module in states.items():
        decay = {id(p): group["weight_decay"] for group in optimizers[part].param_groups for p in group["params"]}
        grads[part] = {}
        for key, param in module.named_parameters():
            if param.grad is None:
                continue
            grads[part][key] = param.grad + decay.get(id(param), 0.0) * before[part][key]
    return {f"grad/{name}": value for name, value in export_official(grads).items()}


def after_step(modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, np.ndarray]:
    """Variables and BatchNorm statistics after the step, and Adam's counters as TF keeps them."""
    arrays = export_official({part: module.state_dict() for part, module in modules.items()})
    optimizer = next(iter(optimizers.values()))
    param = optimizer.param_groups[0]["params"][0]
    taken = int(optimizer.state[param]["step"])
    beta1, beta2 = optimizer.param_groups[0]["betas"]
    arrays["global_step"] = np.array(taken, dtype=np.int64)
    arrays["beta1_power"] = np.array(beta1 ** (taken + 1), dtype=np.float32)  # TF: the power for the next step
    arrays["beta2_power"] = np.array(beta2 ** (taken + 1), dtype=np.float32)
    return arrays


def optimiser_constants(cfg, optimizer: torch.optim.Optimizer) -> dict[str, np.ndarray]:
    """The learning rate of step 0 from spotart's schedule, and Adam's constants as its optimiser holds them."""
    beta1, beta2 = optimizer.param_groups[0]["betas"]
    rate = cfg.lr * lr_factor(0, cfg.steps, cfg.lr_decay_fraction, cfg.lr_final_factor)
    return {"PolynomialDecay:0": np.float32(rate), "adam/beta1": np.float32(beta1),
            "adam/beta2": np.float32(beta2), "adam/epsilon": np.float32(cfg.adam_eps)}


def _preset_config(command: str, preset: Path, steps: int, precision: str):
    """A preset at the fixtures' size, batch and one tower's L2; ``steps`` only sets the schedule (lr at step 0)."""
    return build_config(command, str(preset), set_pairs=[
        f"image_size={IMAGE_SIZE}", f"batch_size={BATCH}", f"steps={steps}", f"weight_decay={ONE_TOWER_L2}",
        f"precision={precision}", "channels_last=off", "num_workers=0", "data=fixture"])


def stage2_config(precision: str = "fp32"):
    return _preset_config("train-spot", STAGE2_PRESET, 1000, precision)  # the official runs' stage-2 length


def stage1_config(precision: str = "fp32"):
    return _preset_config("train-ae", STAGE1_PRESET, 500, precision)


def cpu_runtime(cfg) -> Runtime:
    """The runtime a CPU run of ``cfg`` gets (its precision and ``gemm_weight_grads``), in NCHW."""
    device = torch.device("cpu")
    return Runtime(device, resolve_precision(cfg.precision, device), False,
                   resolve_gemm_weight_grads(cfg.gemm_weight_grads, device))


@contextmanager
def injected_keep_mask(keep_mask: torch.Tensor) -> Iterator[None]:
    """The generator's keep-mask draw replaced by the official one (``floor(0.3 + U)``)."""
    def official_draw(batch, grid, drop_rate, *, device=None, generator=None, dtype=torch.float32):
        assert (batch, grid) == (keep_mask.shape[0], keep_mask.shape[-1]), "the replay's batch is the fixture's"
        return keep_mask.to(device=device, dtype=dtype)

    with mock.patch("spotart.models.generator.sample_keep_mask", official_draw):
        yield


def pool_choices(pool_input: torch.Tensor) -> torch.Tensor:
    """Which input each 3x3/2 max-pool window picks (flat index into the padded map), of an NCHW padded input."""
    return F.max_pool2d(pool_input, 3, stride=2, return_indices=True)[1]


def tie_breaker(official_input: torch.Tensor, pad: Callable[[torch.Tensor], torch.Tensor]):
    """A forward pre-hook for a max pool that resolves every window whose winner differs from TF's as TF resolved it:
    the two competing inputs get TF's values (a constant offset, so gradients still flow). ``official_input`` is TF's
    unpadded pool input (NCHW); ``pad`` pads as the trunk does. The windows it changed are kept in ``.changed``."""

    def hook(module, args):
        (x,) = args
        official = pad(official_input.to(x.dtype))
        ours, theirs = pool_choices(x.detach()), pool_choices(official)
        differ = (ours != theirs).nonzero().tolist()
        offset = torch.zeros_like(x)
        flat_x, flat_tf, flat_offset = x.detach().flatten(2), official.flatten(2), offset.flatten(2)
        for n, c, h, w in differ:
            for index in (int(ours[n, c, h, w]), int(theirs[n, c, h, w])):
                flat_offset[n, c, index] = flat_tf[n, c, index] - flat_x[n, c, index]
        hook.changed.extend((n, c, h, w) for n, c, h, w in differ)
        return (x + offset,)

    hook.changed = []
    return hook


def replay_stage2(precision: str = "fp32", resolve_ties: bool = False) -> dict[str, np.ndarray]:
    """spotart's stage-2 step on the fixture's state and draws, every tensor under its official name.

    ``resolve_ties``: C's max pools pick what TF's picked where a window's two largest inputs are so close that fp32
    rounding decides (the near-ties of ``checks.json``); the windows changed are returned as ``ties/pool1`` and
    ``ties/pool2`` (rows of image, channel, output row, output column)."""
    cfg = stage2_config(precision)
    runtime = cpu_runtime(cfg)
    variables = fixture_variables("stage2_before")
    step_arrays = fixture("stage2_step")
    states = convert_official(variables)
    autoencoder = AutoEncoder(upsampling=cfg_autoencoder_upsampling())
    load_into(autoencoder, states["autoencoder"], "autoencoder")
    autoencoder.requires_grad_(False).eval()
    models = build_models(cfg, autoencoder, runtime)
    disc, repair = models.discriminator, models.generator.repair
    load_into(repair, states["repair"], "repair")
    load_into(disc, states["discriminator"], "discriminator")
    before = {"repair": {k: v.detach().clone() for k, v in repair.named_parameters()},
              "discriminator": {k: v.detach().clone() for k, v in disc.named_parameters()}}

    images = nchw(step_arrays["tower_0/fifo_queue_Dequeue:0"])
    keep_mask = nchw(step_arrays["tower_0/pixel_dropout/Floor:0"])
    dropout_keep = torch.from_numpy(step_arrays["tower_0/discriminator/Dropout/dropout_1/GreaterEqual:0"]).reshape(
        2 * BATCH, -1)
    disc.class_head[4] = FixedDropout(dropout_keep)

    rec = Recorder()
    decoder = autoencoder.decoder
    rec.output_of("encoder", autoencoder.encoder)
    for i, stage in enumerate(decoder.stages):
        rec.output_of(f"decoder_stage_{i}", stage)
    for i, block in enumerate(repair.blocks):
        rec.input_of(f"repair_{i}", block)
        rec.output_of(f"repair_{i}", block)
        rec.input_of(f"repair_{i}_bn", block.body[1])
    trunk = disc.trunk
    rec.input_of("disc", disc)
    for name in ("relu", "pool1", "norm1", "pool2", "norm2", "conv5", "mask_head"):
        rec.output_of(name, getattr(trunk, name, None) or getattr(disc, name))
    rec.input_of("bn5", trunk.bn5.norm)
    rec.output_of("fc_1", disc.class_head[1])
    rec.input_of("fc_1_bn", disc.class_head[2])
    rec.output_of("fc_1_relu", disc.class_head[3])
    rec.output_of("dropout", disc.class_head[4])
    rec.output_of("class_logits", disc.class_head)
    image_grad: list[torch.Tensor] = []

    def keep_fake_grad(_module, _args, out):
        if out.fake.requires_grad:
            out.fake.register_hook(lambda grad: image_grad.append(grad.detach().clone()))

    rec.handles.append(models.generator.register_forward_hook(keep_fake_grad))
    breakers = {}
    if resolve_ties:
        pool_inputs = (("pool1", "tower_0/discriminator/conv_1/Relu:0"), ("pool2", "tower_0/discriminator/concat:0"))
        for pool, key in pool_inputs:
            breakers[pool] = tie_breaker(nchw(step_arrays[key]), functools.partial(trunk._pad, layer=pool))
            rec.handles.append(getattr(trunk, pool).register_forward_pre_hook(breakers[pool]))
    models.generator.train()
    disc.train()
    try:
        with injected_keep_mask(keep_mask):
            result = spot_step(models, images, cfg, runtime, step=0)
    finally:
        rec.remove()

    out: dict[str, np.ndarray] = {}
    outputs, inputs = rec.outputs, rec.inputs
    phi = outputs["encoder"][0]
    out["tower_0/encoder/conv_4/LeakyRelu:0"] = nhwc(phi)
    out["tower_0/AvgPool2D/AvgPool:0"] = nhwc(fill_features(phi))
    out["tower_0/add:0"] = nhwc(inputs["repair_0"][0][0])
    scopes = ("deconv_0", "deconv_1", "deconv_2", "deconv_4")
    stage_outputs = outputs["decoder_stage_0"] + outputs["decoder_stage_1"] + outputs["decoder_stage_2"] + outputs[
        "decoder_stage_3"]
    for i, scope in enumerate(scopes):
        real_path, repaired_path = outputs[f"decoder_stage_{i}"]
        out[f"tower_0/decoder/{scope}/LeakyRelu:0"] = nhwc(real_path)
        out[f"tower_0/decoder_{i + 1}/{scope}/LeakyRelu:0"] = nhwc(repaired_path)
    assert len(stage_outputs) == 8, "the decoder runs twice: the real path, then the repaired one"
    out["tower_0/decoder/deconv_5/Tanh:0"] = nhwc(result.generated.real)
    out["tower_0/decoder_5/deconv_5/Tanh:0"] = nhwc(result.generated.fake)
    for i in range(5):
        scope = "tower_0/generator/repair_0" if i == 0 else f"tower_0/generator_{i}/repair_{i}"
        out[f"{scope}/add:0"] = nhwc(outputs[f"repair_{i}"][0])
        mean, var = batch_moments(inputs[f"repair_{i}_bn"][0][0])
        out[f"{scope}/conv1/BatchNorm/FusedBatchNormV3:1"] = mean
        out[f"{scope}/conv1/BatchNorm/FusedBatchNormV3:2"] = var
        if i > 0:
            out[f"tower_0/decoder_{i}/ResizeNearestNeighbor:0"] = nhwc(inputs[f"repair_{i}"][0][1])
    out["tower_0/pixel_dropout/Floor:0"] = nhwc(result.generated.keep_mask)
    out["tower_0/ResizeNearestNeighbor:0"] = nhwc(upsample_mask(result.generated.keep_mask, IMAGE_SIZE))
    mask_targets = torch.cat([torch.ones_like(result.generated.keep_mask), result.generated.keep_mask])
    out["tower_0/concat_8:0"] = numpy(mask_targets.reshape(2 * BATCH, -1))

    disc_input = inputs["disc"][0][0]
    out["tower_0/sub_1:0"] = nhwc(trunk.normalize(disc_input))
    relu = outputs["relu"]
    d = "tower_0/discriminator"
    out[f"{d}/conv_1/Relu:0"] = nhwc(relu[0])
    out[f"{d}/pool_1/MaxPool:0"] = nhwc(outputs["pool1"][0])
    out[f"{d}/LRN:0"] = nhwc(outputs["norm1"][0])
    out[f"{d}/concat:0"] = nhwc(relu[1])
    out[f"{d}/pool_2/MaxPool:0"] = nhwc(outputs["pool2"][0])
    out[f"{d}/LRN_1:0"] = nhwc(outputs["norm2"][0])
    out[f"{d}/conv_3/Relu:0"] = nhwc(relu[2])
    out[f"{d}/concat_1:0"] = nhwc(relu[3])
    conv5 = outputs["conv5"][0]
    mean, var = batch_moments(inputs["bn5"][0][0])
    for group in (0, 1):
        half = slice(128 * group, 128 * (group + 1))
        out[f"{d}/conv_5/conv_{group}/Conv2D:0"] = nhwc(conv5[:, half])
        out[f"{d}/conv_5/conv_{group}/BatchNorm/FusedBatchNormV3:1"] = mean[half]
        out[f"{d}/conv_5/conv_{group}/BatchNorm/FusedBatchNormV3:2"] = var[half]
    out[f"{d}/concat_2:0"] = nhwc(relu[4])
    mask_logits = outputs["mask_head"][0]
    out[f"{d}/drop_pred/BiasAdd:0"] = nhwc(mask_logits)
    out[f"{d}/Flatten/flatten/Reshape:0"] = numpy(mask_logits.reshape(2 * BATCH, -1))
    as_conv = (2 * BATCH, 1, 1, -1)  # fc_1 is officially a VALID convolution: (N, 1, 1, 4096)
    out[f"{d}/fc_1/Conv2D:0"] = numpy(outputs["fc_1"][0].reshape(as_conv))
    mean, var = batch_moments(inputs["fc_1_bn"][0][0])
    out[f"{d}/fc_1/BatchNorm/FusedBatchNormV3:1"] = mean
    out[f"{d}/fc_1/BatchNorm/FusedBatchNormV3:2"] = var
    out[f"{d}/fc_1/Relu:0"] = numpy(outputs["fc_1_relu"][0].reshape(as_conv))
    out[f"{d}/Dropout/dropout_1/GreaterEqual:0"] = numpy(dropout_keep.reshape(as_conv)).astype(bool)
    out[f"{d}/Dropout/dropout_1/SelectV2:0"] = numpy(outputs["dropout"][0].reshape(as_conv))
    out[f"{d}/Flatten_1/flatten/Reshape:0"] = numpy(outputs["class_logits"][0])
    out["tower_0/gradients/AddN_3:0"] = nhwc(image_grad[0])

    # the losses: spotart's terms, scaled by their weights as the official tf.losses calls weight them
    losses = result.losses
    out["tower_0/value:0"] = numpy(losses["c_gan"])
    out["tower_0/value_1:0"] = numpy(cfg.mask_loss_weight * losses["c_mask"])
    out["tower_0/value_2:0"] = numpy(cfg.gan_weight * losses["r_gan"])
    out["tower_0/value_3:0"] = numpy(cfg.recon_weight * losses["r_recon"])
    all_variables = export_official({"autoencoder": autoencoder.state_dict(),
                                     "repair": before["repair"], "discriminator": before["discriminator"]})
    decayed = {name for name in all_variables if name.endswith("/weights")} | {"decoder/deconv_5/biases"}
    l2 = l2_terms(all_variables, decayed, cfg.weight_decay)
    out.update({key: np.float32(value) for key, value in l2.items()})
    l2_sum = np.float32(sum(l2.values()))
    out["tower_0/disc_total_loss:0"] = numpy(losses["c_loss"]) + l2_sum
    out["tower_0/gen_total_loss:0"] = numpy(losses["r_total"]) + l2_sum
    out["tower_0/add_2:0"] = out["tower_0/disc_total_loss:0"] + out["tower_0/gen_total_loss:0"]
    out["tower_0/control_dependency_1:0"] = out["tower_0/disc_total_loss:0"]  # what each gradient is taken of
    out["tower_0/control_dependency:0"] = out["tower_0/gen_total_loss:0"]
    out["tower_0/fifo_queue_Dequeue:0"] = nhwc(images)
    uniform = torch.from_numpy(step_arrays["tower_0/pixel_dropout/random_uniform/RandomUniform:0"])
    out["tower_0/pixel_dropout/random_uniform/RandomUniform:0"] = numpy(uniform)  # injected: the draw itself
    out["tower_0/pixel_dropout/keep_from_uniform"] = numpy(keep_from_uniform(uniform, cfg.drop_rate).float())
    out.update(optimiser_constants(cfg, models.opt_c))

    for pool, breaker in breakers.items():
        out[f"ties/{pool}"] = np.array(breaker.changed, dtype=np.int64).reshape(-1, 4)
    modules = {"repair": repair, "discriminator": disc}
    optimizers = {"repair": models.opt_r, "discriminator": models.opt_c}
    out.update(adam_gradients(modules, optimizers, before))
    out.update({f"after/{k}": v for k, v in after_step(modules, optimizers).items()})
    return out


def cfg_autoencoder_upsampling() -> str:
    """The decoder convention of the official autoencoder, as the stage-1 preset trains it."""
    return stage1_config().decoder_upsampling


def replay_c_inference(variant: str) -> dict[str, np.ndarray]:
    """C in inference mode on the step's C input: ``A`` with the moving statistics before the step, ``B`` after."""
    cfg = stage2_config()
    runtime = cpu_runtime(cfg)
    states = convert_official(fixture_variables("stage2_before"), parts=("discriminator",))
    models = build_models(cfg, AutoEncoder(), runtime)
    disc = models.discriminator
    load_into(disc, states["discriminator"], "discriminator")
    if variant == "B":
        after = fixture("stage2_after")
        moving = {}
        for name in ("conv_5/conv_0", "conv_5/conv_1", "fc_1"):
            for stat in ("moving_mean", "moving_variance"):
                key = f"discriminator/{name}/BatchNorm/{stat}"
                moving[key] = after[key]
        stats = convert_official({**fixture_variables("stage2_before"), **moving}, parts=("discriminator",))
        load_into(disc, stats["discriminator"], "discriminator")
    step_arrays = fixture("stage2_step")
    images = torch.cat([nchw(step_arrays["tower_0/decoder/deconv_5/Tanh:0"]),
                        nchw(step_arrays["tower_0/decoder_5/deconv_5/Tanh:0"])])
    disc.eval()
    rec = Recorder()
    rec.output_of("fc_1_relu", disc.class_head[3])
    with torch.no_grad():
        features = disc.forward_features(images)
        output = disc(images)
    rec.remove()
    out = {f"{variant}/conv_{i}": nhwc(features[f"conv{i}"]) for i in range(1, 6)}
    out[f"{variant}/fc_1"] = numpy(rec.outputs["fc_1_relu"][0].reshape(2 * BATCH, 1, 1, -1))
    out[f"{variant}/mask_logits"] = numpy(output.mask_logits.reshape(2 * BATCH, -1))
    out[f"{variant}/class_logits"] = numpy(output.class_logits)
    return out


def replay_stage1(precision: str = "fp32") -> dict[str, np.ndarray]:
    """spotart's stage-1 step on the fixture's state and batch, every tensor under its official name."""
    cfg = stage1_config(precision)
    runtime = cpu_runtime(cfg)
    states = convert_official(fixture_variables("stage1_before"))
    model = AutoEncoder(init=cfg.ae_init, upsampling=cfg_autoencoder_upsampling())
    load_into(model, states["autoencoder"], "autoencoder")
    before = {"autoencoder": {k: v.detach().clone() for k, v in model.named_parameters()}}
    optimizer = make_adam(model, cfg, decay_also=(model.decoder.to_rgb.bias,) if cfg.decay_output_bias else (),
                          decay_also_factor=cfg.bias_grad_factor)
    images = nchw(fixture("stage1_step")["tower_0/fifo_queue_Dequeue:0"])
    rec = Recorder()
    rec.output_of("encoder", model.encoder)
    norms = [(f"tower_0/encoder/conv_{i}", layer[1]) for i, layer in enumerate(model.encoder.layers)]
    norms += [(f"tower_0/decoder/{scope}", stage.block[1])
              for scope, stage in zip(("deconv_0", "deconv_1", "deconv_2", "deconv_4"), model.decoder.stages,
                                      strict=True)]
    for scope, norm in norms:
        rec.input_of(scope, norm)
    model.train()
    try:
        losses, recon = autoencoder_step(model, images, optimizer, runtime, cfg.recon_weight, step=0, cfg=cfg)
    finally:
        rec.remove()
    out: dict[str, np.ndarray] = {}
    for scope, _norm in norms:
        mean, var = batch_moments(rec.inputs[scope][0][0])
        out[f"{scope}/BatchNorm/FusedBatchNormV3:1"] = mean
        out[f"{scope}/BatchNorm/FusedBatchNormV3:2"] = var
    out["tower_0/encoder/conv_4/LeakyRelu:0"] = nhwc(rec.outputs["encoder"][0])
    out["tower_0/decoder/deconv_5/Tanh:0"] = nhwc(recon)
    out["tower_0/value:0"] = numpy(losses["loss"])
    variables = export_official(before)
    decayed = {name for name in variables if name.endswith("/weights")}
    if cfg.decay_output_bias:
        decayed.add("decoder/deconv_5/biases")
    l2 = l2_terms(variables, decayed, cfg.weight_decay)
    out.update({key: np.float32(value) for key, value in l2.items()})
    out["tower_0/ae_total_loss_0:0"] = numpy(losses["loss"]) + np.float32(sum(l2.values()))
    out["tower_0/control_dependency:0"] = out["tower_0/ae_total_loss_0:0"]
    out["tower_0/fifo_queue_Dequeue:0"] = nhwc(images)
    out.update(optimiser_constants(cfg, optimizer))
    modules = {"autoencoder": model}
    out.update(adam_gradients(modules, {"autoencoder": optimizer}, before))
    out.update({f"after/{k}": v for k, v in after_step(modules, {"autoencoder": optimizer}).items()})
    return out


