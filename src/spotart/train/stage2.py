"""Stage 2: damage, repair, discriminate (``spotart train-spot``).

Each step: the frozen autoencoder encodes x once (clean features and the "real" reconstruction), a keep
mask damages the features, R repairs them inside the frozen decoder, C sees reconstructions and repaired
images in one forward pass, and C and R are both updated from that pass (as the official code does).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid

from ..config import SpotConfig, config_to_dict
from ..losses import discriminator_loss, discriminator_metrics, repair_objective
from ..models import (
    ArtifactGenerator,
    AutoEncoder,
    Discriminator,
    DiscriminatorOutput,
    GeneratedBatch,
    damage_features,
    decode_with_repair,
)
from ..models.gemm_conv import use_gemm_weight_grads
from . import distributed as dist_utils
from .checkpoints import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint, rng_state, set_rng_state
from .device import Runtime, maybe_compile
from .nonfinite import UNGUARDED, NonFiniteGuard
from .optimisation import make_adam, scale_bias_grads, use_tf_adam_epsilon
from .session import Stage, count_parameters, run_loop, start_session

log = logging.getLogger("spotart")


def load_autoencoder(path: str | Path, image_size: int | None = None) -> AutoEncoder:
    """The stage-1 weights of ``path``, frozen (a stage-2 checkpoint carries its autoencoder too)."""
    return autoencoder_from_payload(load_checkpoint(path), str(path), image_size)


def autoencoder_from_payload(payload: dict[str, Any], source: str, image_size: int | None = None) -> AutoEncoder:
    """The frozen autoencoder of an already loaded checkpoint (``source`` names it in errors)."""
    if payload["stage"] == "autoencoder":
        state = payload["model"]
        upsampling = payload["config"].get("decoder_upsampling", "half_pixel")
    elif payload["stage"] == "spot":
        if "autoencoder" not in payload:  # a networks-only snapshot whose shared autoencoder.pt is not beside it
            missing = payload.get("missing_parts", {}).get("autoencoder", "autoencoder.pt beside it")
            raise CheckpointError(f"{source} keeps its frozen autoencoder in {missing}, which is missing: copy the "
                                  "run's whole checkpoints/ folder, or use its latest.pt (which holds a copy)")
        state = payload["autoencoder"]
        upsampling = payload.get("autoencoder_upsampling", "half_pixel")  # absent before the key existed
    else:
        raise CheckpointError(f"{source} holds no autoencoder (stage {payload['stage']!r})")
    trained_at = payload["config"]["image_size"]
    if image_size is not None and trained_at != image_size:
        raise CheckpointError(
            f"the autoencoder in {source} was trained on {trained_at} px images; this run is at {image_size} px "
            f"(pass --image-size {trained_at}, or train an autoencoder at {image_size} px)"
        )
    model = AutoEncoder(upsampling=upsampling)
    model.load_state_dict(state)
    return model.requires_grad_(False).eval()


@dataclass
class SpotModels:
    generator: ArtifactGenerator  # frozen autoencoder + repair network R (may be None)
    discriminator: Discriminator
    opt_c: torch.optim.Optimizer
    opt_r: torch.optim.Optimizer | None
    discriminate: Callable[[torch.Tensor], DiscriminatorOutput]  # the discriminator, compiled when asked
    generate: Callable[..., GeneratedBatch] | None = None  # the generator, compiled when asked (None: as it is)

    @property
    def forward_generator(self) -> Callable[..., GeneratedBatch]:
        """The generator as a step calls it: compiled when asked, else as it is."""
        return self.generate if self.generate is not None else self.generator

    @property
    def repair_params(self) -> list[torch.nn.Parameter]:
        return [] if self.generator.repair is None else list(self.generator.repair.parameters())


def build_models(cfg: SpotConfig, autoencoder: AutoEncoder, runtime: Runtime) -> SpotModels:
    generator = ArtifactGenerator(autoencoder, cfg.repair, cfg.drop_rate, cfg.passes, cfg.repair_init)
    # C is drawn from the seed alone, whatever was built before it (the autoencoder, a repair network or none),
    # so that its trunk is the random-init baseline of the same seed and scheme (``--init random``), the network
    # its gains are measured against, as RotNet's is. Drawn from the shared stream (before 2026-12-06), C started
    # from one network with a repair network, another without, and the baseline was a third
    # (benchmarks/start_networks.py rebuilds and probes such a start).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        discriminator = Discriminator(cfg.image_size, init=cfg.disc_init, padding=cfg.disc_padding,
                                      fc1_bn_scale=cfg.fc1_bn_scale)
    discriminator = dist_utils.convert_batchnorm(discriminator, cfg.sync_batchnorm, runtime.device)
    if generator.repair is not None:
        generator.repair = dist_utils.convert_batchnorm(generator.repair, cfg.sync_batchnorm, runtime.device)
    generator.to(runtime.device, memory_format=runtime.memory_format)
    discriminator.to(runtime.device, memory_format=runtime.memory_format)
    if runtime.gemm_weight_grads:  # the frozen autoencoder keeps its convolutions (no weight gradients there)
        use_gemm_weight_grads(generator)
        use_gemm_weight_grads(discriminator)
    dist_utils.broadcast_module(generator)
    dist_utils.broadcast_module(discriminator)
    opt_c = make_adam(discriminator, cfg)
    opt_r = None
    if generator.repair is not None:
        opt_r = make_adam(generator.repair, cfg, lr_scale=cfg.repair_lr_factor)
    return SpotModels(generator, discriminator, opt_c, opt_r, maybe_compile(discriminator, cfg.compile),
                      maybe_compile(generator, cfg.compile))


@dataclass
class StepResult:
    losses: dict[str, torch.Tensor]  # c_loss, c_gan, c_mask, and r_* when R was updated
    metrics: dict[str, float]
    generated: GeneratedBatch
    mask_logits_fake: torch.Tensor
    updated_repair: bool


def spot_step(
    models: SpotModels, images: torch.Tensor, cfg: SpotConfig, runtime: Runtime, step: int,
    mask_generator: torch.Generator | None = None, guard: NonFiniteGuard = UNGUARDED,
) -> StepResult:
    """One joint step of C and R from a single forward pass."""
    gen = models.forward_generator
    disc = models.discriminator
    update_repair = (
        models.opt_r is not None and step >= cfg.warmup_steps and step % cfg.repair_every == 0
    )
    # C's and R's BatchNorm statistics saved, put back if the guard skips this step
    with guard.step(step, models.discriminator, models.generator) as verdict:
        with runtime.autocast():
            if not update_repair:
                with torch.no_grad():  # R is not updated this step: no graph through the decoder
                    generated = gen(images, mask_generator)
            else:
                generated = gen(images, mask_generator)
            batch = images.shape[0]
            # (2B, ...): reconstructions and repaired images in one pass, sharing BatchNorm statistics
            both = models.discriminate(torch.cat([generated.real, generated.fake]))
        real_out = type(both)(both.class_logits[:batch], both.mask_logits[:batch])
        fake_out = type(both)(both.class_logits[batch:], both.mask_logits[batch:])

        c_losses = discriminator_loss(real_out, fake_out, generated.keep_mask, cfg.mask_loss_weight)
        losses = {f"c_{k}": v for k, v in c_losses.items()}
        if update_repair:
            r_losses = repair_objective(cfg.repair_loss, real_out, fake_out, c_losses, generated.fake, images,
                                        generated.keep_mask, cfg.gan_weight, cfg.recon_weight)
            r_total = r_losses.pop("total")  # what R's gradient is taken of (R's own terms, plus C's loss if asked)
            losses.update({f"r_{k}": v for k, v in r_losses.items()})
            if cfg.repair_loss != "paper":
                losses["r_total"] = r_total

        metrics = discriminator_metrics(real_out, fake_out, generated.keep_mask)
        models.opt_c.zero_grad(set_to_none=True)
        if models.opt_r is not None:
            models.opt_r.zero_grad(set_to_none=True)
        # on CUDA the verdict stays on the device (no sync in a step): verdict.update drops a bad update there
        if verdict.admit(losses):
            c_params = [p for p in disc.parameters() if p.requires_grad]
            # Both backward passes before either optimiser step: stepping C first would change the weights
            # that R's gradient has to flow through.
            c_losses["loss"].backward(inputs=c_params, retain_graph=update_repair)
            if update_repair:
                r_total.backward(inputs=models.repair_params)
            dist_utils.average_gradients(c_params)
            _official_optimiser_details(models.opt_c, disc, cfg)
            verdict.update(models.opt_c)
            if update_repair:
                dist_utils.average_gradients(models.repair_params)
                _official_optimiser_details(models.opt_r, gen.repair, cfg)
                verdict.update(models.opt_r)
    return StepResult(losses, metrics, generated, fake_out.mask_logits.detach(), update_repair)


def _official_optimiser_details(optimizer: torch.optim.Optimizer, module: torch.nn.Module, cfg: SpotConfig) -> None:
    """Before a step: the official bias-gradient factor and TF's epsilon placement, when asked for."""
    scale_bias_grads(module, cfg.bias_grad_factor)
    if cfg.tf_adam_epsilon:
        use_tf_adam_epsilon(optimizer, cfg.adam_eps)


@torch.no_grad()
def damaged_decoding(generator: ArtifactGenerator, images: torch.Tensor, keep_mask: torch.Tensor) -> torch.Tensor:
    """The same damage decoded without repair: what the repair network has to hide."""
    autoencoder = generator.autoencoder
    phi = autoencoder.encoder(images)
    return decode_with_repair(autoencoder.decoder, None, damage_features(phi, keep_mask), keep_mask)


def artifact_grid(generator: ArtifactGenerator, images: torch.Tensor, result: StepResult, count: int = 8
                  ) -> torch.Tensor:
    """Rows: input x, real (reconstruction), damaged without repair, repaired, true keep mask, predicted keep."""
    g = result.generated
    count = min(count, images.shape[0])
    size = images.shape[-1]

    def to_image(t: torch.Tensor) -> torch.Tensor:
        return t[:count].float().cpu().add(1).div(2).clamp(0, 1)

    def mask_image(mask: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(mask[:count].float().cpu(), size=(size, size), mode="nearest")
        return up.expand(-1, 3, -1, -1)

    damaged = damaged_decoding(generator, images[:count], g.keep_mask[:count])
    rows = [to_image(images), to_image(g.real), to_image(damaged), to_image(g.fake), mask_image(g.keep_mask),
            mask_image(torch.sigmoid(result.mask_logits_fake))]
    return make_grid(torch.cat(rows), nrow=count, padding=2)


def checkpoint_payload(models: SpotModels, cfg: SpotConfig, step: int, mask_generator: torch.Generator) -> dict:
    repair = models.generator.repair
    return {
        "stage": "spot",
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "config": config_to_dict(cfg),
        "discriminator": models.discriminator.state_dict(),
        "repair": repair.state_dict() if repair is not None else None,
        "autoencoder": models.generator.autoencoder.state_dict(),
        "autoencoder_upsampling": models.generator.autoencoder.decoder.upsampling,
        "opt_c": models.opt_c.state_dict(),
        "opt_r": models.opt_r.state_dict() if models.opt_r is not None else None,
        "rng": rng_state({"mask": mask_generator}),
    }


def train_spot(cfg: SpotConfig, out: str, resume: bool = False,
               monitor: Callable[[torch.nn.Module, int], dict[str, float]] | None = None) -> Path:
    """Stage 2. ``monitor(discriminator, step)`` gives extra metrics at some steps (the kNN monitor, built by the
    caller: ``evaluation.knn.monitor_from_config``); it is called at step 0 and after every step."""
    if not cfg.autoencoder and not resume:
        raise CheckpointError("train-spot needs the stage-1 checkpoint: pass --autoencoder CKPT")
    session = start_session(cfg, out, "train-spot", stage="spot", resume=resume)
    runtime = session.runtime
    # a resumed run takes the frozen autoencoder from its own checkpoint, so it cannot silently change
    if session.resumed:  # already read by start_session: no second load of a large checkpoint
        autoencoder = autoencoder_from_payload(session.resumed, str(session.checkpoints.latest), cfg.image_size)
    else:
        autoencoder = load_autoencoder(cfg.autoencoder, cfg.image_size)
    models = build_models(cfg, autoencoder, runtime)
    mask_generator = torch.Generator(device=runtime.device).manual_seed(cfg.seed * 1000 + dist_utils.rank() + 1)
    if session.resumed:
        state = session.resumed
        models.discriminator.load_state_dict(state["discriminator"])
        if models.generator.repair is not None:
            models.generator.repair.load_state_dict(state["repair"])
            models.opt_r.load_state_dict(state["opt_r"])
        models.opt_c.load_state_dict(state["opt_c"])
        set_rng_state(state["rng"], {"mask": mask_generator})
    else:
        torch.manual_seed(cfg.seed + dist_utils.rank())
    log.info("discriminator: %.2fM parameters; repair network: %.2fM (%s repair, drop rate %.2f, %d pass(es))",
             count_parameters(models.discriminator) / 1e6, count_parameters(models.generator) / 1e6,
             cfg.repair, cfg.drop_rate, cfg.passes)

    if cfg.knn_val and monitor is None and dist_utils.is_main_process():
        log.warning("knn_val is set but no monitor was handed to train_spot: no kNN rows are logged "
                    "(spotart train-spot builds one; from Python pass monitor=monitor_from_config(cfg))")
    guard = NonFiniteGuard.for_device(runtime.device)

    def step(images: torch.Tensor, labels: torch.Tensor, index: int) -> tuple[dict, StepResult]:
        result = spot_step(models, images, cfg, runtime, index, mask_generator, guard)
        return {**result.losses, **result.metrics, "repair_active": float(result.updated_repair)}, result

    def after_step(index: int) -> dict[str, float]:
        return monitor(models.discriminator, index) if monitor is not None else {}

    models.generator.train()
    models.discriminator.train()
    optimizers = [(models.opt_c, cfg.lr)]
    if models.opt_r is not None:
        optimizers.append((models.opt_r, cfg.lr * cfg.repair_lr_factor))
    stage = Stage(
        name="train-spot",
        step=step,
        optimizers=optimizers,
        payload=lambda index: checkpoint_payload(models, cfg, index, mask_generator),
        sync_modules=[models.discriminator, models.generator],
        grid=lambda images, result: artifact_grid(models.generator, images, result),
        grid_name="artifacts",
        postfix={"c": "c_loss", "acc": "disc_acc", "mask": "mask_acc_fake"},
        after_step=after_step,
        min_batch=2,  # BatchNorm1d in C's class head needs two images
    )
    return run_loop(session, stage, guard)
