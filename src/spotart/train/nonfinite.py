"""The NaN guard: skip a step with a non-finite loss, give up after too many in a row.

Two modes, chosen by ``NonFiniteGuard.for_device``:

- immediate (CPU): ``ok()`` reads the losses back, logs the step, and the caller skips backward and the update.
  On a CPU every op is synchronous anyway, so reading a value back costs nothing.
- deferred (CUDA): reading a value back inside a step would make the host wait for the GPU every step, so
  ``skip_flag()`` keeps the verdict on the device as a 0-d float (1.0 = skip), ``step_optimizer`` hands it to
  the fused Adam kernel as ``found_inf`` (the mechanism ``torch.amp.GradScaler`` uses), which leaves the
  parameters, moments and step count untouched, and ``check()`` reads the counts back once per logged row.
  A non-finite update is never applied in either mode; in deferred mode, giving up after ``patience`` steps in
  a row happens at the next logged row rather than at once.

A skipped step must leave no trace, and the forward pass has already moved every training-mode BatchNorm's
running statistics towards the bad batch: one NaN batch would make them NaN, and every later eval-mode pass (the
kNN monitor, probes, export) NaN with them. ``BatchNormSnapshot`` saves them before the forward pass, and
``admit`` puts them back when the step is skipped. In deferred mode the verdict is only known on the device, and
the statistics cannot change before backward (autograd saved them for it), so ``settle()``, at the end of the step,
puts them back with a device-side select: no sync.

A step function holds all of this in one context, ``GuardedStep``, whatever the mode::

    with guard.step(step, model) as verdict:  # saves model's BatchNorm statistics
        loss = loss_fn(model(images))
        optimizer.zero_grad(set_to_none=True)
        if verdict.admit({"loss": loss}):  # False: skipped (immediate guard), statistics already put back
            loss.backward()
            verdict.update(optimizer)  # optimizer.step(), dropped on the device if a deferred verdict says skip
    # on leaving: a deferred verdict's statistics are settled; after an exception they are put back

``UNGUARDED`` (the step functions' default) runs every update: the same code path, no checks, nothing saved.
"""

from __future__ import annotations

import logging

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger("spotart")


class BatchNormSnapshot:
    """The running statistics of every BatchNorm in ``modules``, saved by ``save()`` before a forward pass, so that
    a step the guard skips can put them back (``restore``)."""

    def __init__(self, *modules: nn.Module) -> None:
        norms = {id(norm): norm for module in modules for norm in module.modules()
                 if isinstance(norm, nn.modules.batchnorm._BatchNorm) and norm.track_running_stats}
        self.buffers = [buffer for norm in norms.values()
                        for buffer in (norm.running_mean, norm.running_var, norm.num_batches_tracked)
                        if buffer is not None]
        self.saved = [buffer.clone() for buffer in self.buffers]
        self.pending: torch.Tensor | None = None  # a deferred guard's skip flag, applied by settle()

    def save(self) -> BatchNormSnapshot:
        if self.buffers:
            with torch.no_grad():
                torch._foreach_copy_(self.saved, self.buffers)  # one fused copy, not one kernel per buffer
        return self

    def settle(self) -> None:
        """At the end of a step (after backward and the optimiser): apply a deferred guard's verdict, if any."""
        if self.pending is not None:
            flag, self.pending = self.pending, None
            self.restore(where=flag)

    @torch.no_grad()
    def restore(self, where: torch.Tensor | None = None) -> None:
        """Put the saved statistics back; with ``where`` (a device-side 0-d flag, 1.0 = skip), only if it is set."""
        for buffer, saved in zip(self.buffers, self.saved):
            buffer.copy_(saved if where is None else torch.where(where > 0, saved, buffer))


class NonFiniteGuard:
    """Skip a step whose loss is NaN or infinite, with a clear log line; give up after ``patience`` in a row."""

    def __init__(self, patience: int = 20, deferred: bool = False) -> None:
        self.patience, self.in_a_row, self.total = patience, 0, 0
        self.deferred = deferred
        # deferred mode: device-side counts since the last check()
        self._skipped: torch.Tensor | None = None  # steps skipped
        self._in_a_row: torch.Tensor | None = None  # current run of skipped steps (carried across checks)
        self._peak: torch.Tensor | None = None  # longest run seen since the last check
        self._last_bad: torch.Tensor | None = None  # step index of the last skipped step
        self._bad_losses: dict[tuple[str, ...], torch.Tensor] = {}  # per set of loss names: (L,) non-finite counts
        self._first_step: int | None = None
        self._snapshots: dict[tuple[int, ...], BatchNormSnapshot] = {}

    @classmethod
    def for_device(cls, device: torch.device, patience: int = 20) -> NonFiniteGuard:
        """Deferred on CUDA (no host synchronisation inside a step), immediate elsewhere."""
        return cls(patience, deferred=device.type == "cuda")

    def admit(self, step: int, losses: dict[str, torch.Tensor], batchnorm: BatchNormSnapshot | None = None,
              ) -> tuple[bool, torch.Tensor | None]:
        """``(run_the_update, skip_flag)`` for a step: immediate guards decide now (the flag is None); deferred
        ones always run the update and hand ``step_optimizer`` a device-side flag that drops it if non-finite.
        ``batchnorm``, saved before the step's forward pass, is put back when the step is skipped: at once by an
        immediate guard, by ``batchnorm.settle()`` at the end of the step for a deferred one."""
        if self.deferred:
            flag = self.skip_flag(step, losses)
            if batchnorm is not None:
                batchnorm.pending = flag
            return True, flag
        run_update = self.ok(step, losses)
        if not run_update and batchnorm is not None:
            batchnorm.restore()
        return run_update, None

    def protect(self, *modules: nn.Module) -> BatchNormSnapshot:
        """Before a step's forward pass: the BatchNorm statistics of ``modules``, saved, to hand to ``admit``
        (the snapshot's buffers are allocated once per set of modules and refilled each step)."""
        key = tuple(id(module) for module in modules)
        if key not in self._snapshots:
            self._snapshots[key] = BatchNormSnapshot(*modules)
        return self._snapshots[key].save()

    def step(self, step: int, *modules: object) -> GuardedStep:
        """One training step under the guard, as a context: ``with guard.step(step, *modules) as verdict:``. It
        saves the BatchNorm statistics of ``modules`` on entering (anything that is not an ``nn.Module``, such as a
        plain function standing in for the forward pass, has none); ``verdict.admit(losses)`` says whether to run
        backward and the update, ``verdict.update(optimizer)`` steps an optimiser; leaving settles the statistics."""
        return GuardedStep(self, step, tuple(module for module in modules if isinstance(module, nn.Module)))

    # ------------------------------------------------------------------------------------------- immediate
    def ok(self, step: int, losses: dict[str, torch.Tensor]) -> bool:
        bad = [name for name, value in losses.items() if not torch.isfinite(value.detach()).all()]
        if not bad:
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        self.total += 1
        log.warning("step %d: non-finite %s; the update is skipped (%d in a row)", step, ", ".join(bad), self.in_a_row)
        if self.in_a_row >= self.patience:
            raise self._diverged(", ".join(bad))
        return False

    def _diverged(self, names: str) -> FloatingPointError:
        return FloatingPointError(
            f"training diverged: {self.patience} steps in a row had a non-finite loss (last: {names}). "
            "Lower the learning rate (--set lr=...) or use --set precision=fp32, then --resume."
        )

    # -------------------------------------------------------------------------------------------- deferred
    def skip_flag(self, step: int, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """0-d float32 on the losses' device: 1.0 when any loss is non-finite (on any rank), else 0.0.

        Only device ops: nothing here waits for the device. The counts are read back by ``check()``.
        """
        # one stacked vector of the (scalar) losses: a few kernels per step, whatever the number of losses
        values = torch.stack([v.detach().float().reshape(()) if v.numel() == 1 else v.detach().float().sum()
                              for v in losses.values()])
        bad = (~torch.isfinite(values)).float()  # (L,) 1.0 = non-finite
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)  # every rank skips the same steps (queued, not awaited)
        flag = bad.amax()
        if self._skipped is None:
            zero = torch.zeros((), device=flag.device)
            self._skipped, self._in_a_row, self._peak = zero.clone(), zero.clone(), zero.clone()
            self._last_bad = torch.full((), -1.0, device=flag.device)
        if self._first_step is None:
            self._first_step = step
        self._in_a_row = (self._in_a_row + 1.0) * flag  # back to 0 on a finite step
        self._peak = torch.maximum(self._peak, self._in_a_row)
        self._skipped = self._skipped + flag
        self._last_bad = torch.where(flag > 0, float(step), self._last_bad)
        names = tuple(losses)  # the same few name sets recur (stage 2: with and without R's losses)
        self._bad_losses[names] = bad if names not in self._bad_losses else self._bad_losses[names] + bad
        return flag

    def check(self, step: int) -> None:
        """Deferred mode, once per logged row: one read-back of the counts; log the skipped steps, and raise
        ``FloatingPointError`` when ``patience`` steps in a row were skipped. Immediate mode: nothing to do."""
        if not self.deferred or self._skipped is None:
            return
        name_sets = list(self._bad_losses)
        counts = torch.cat([torch.stack([self._skipped, self._in_a_row, self._peak, self._last_bad])]
                           + [self._bad_losses[names] for names in name_sets]).tolist()
        skipped, in_a_row, peak, last_bad = (int(v) for v in counts[:4])
        flat_names = [name for names in name_sets for name in names]
        bad_names = list(dict.fromkeys(name for name, count in zip(flat_names, counts[4:]) if count > 0))
        first = self._first_step
        self._skipped.zero_()
        self._peak.copy_(self._in_a_row)
        self._bad_losses, self._first_step = {}, None
        self.in_a_row = in_a_row
        if not skipped:
            return
        self.total += skipped
        log.warning("steps %d-%d: %d step(s) with a non-finite %s; their updates were skipped (last at step %d, "
                    "%d in a row)", first, step - 1, skipped, ", ".join(bad_names), last_bad, in_a_row)
        if peak >= self.patience:
            raise self._diverged(", ".join(bad_names))


class GuardedStep:
    """The guard's three touch points in a step, as one context (made by ``NonFiniteGuard.step``):

    - entering saves the BatchNorm statistics of the step's modules (``NonFiniteGuard.protect``);
    - ``admit(losses)``, between the forward pass and backward: whether to run backward and the update. An immediate
      guard decides now (and puts the statistics back when it says no); a deferred one always says yes and keeps
      its verdict on the device (``skip``), for ``update`` to drop a bad update and for leaving to settle;
    - ``update(optimizer)``: the optimiser's step under that verdict (``step_optimizer``);
    - leaving applies a deferred verdict to the statistics (``BatchNormSnapshot.settle``); when the step raised (the
      guard giving up after too many non-finite steps in a row, or anything else), they are put back.
    """

    def __init__(self, guard: NonFiniteGuard, step: int, modules: tuple[nn.Module, ...]) -> None:
        self.guard, self.index, self.modules = guard, step, modules
        self.norms: BatchNormSnapshot | None = None
        self.skip: torch.Tensor | None = None  # a deferred guard's device-side flag (1.0 = skip), set by admit

    def __enter__(self) -> GuardedStep:
        self.norms = self.guard.protect(*self.modules) if self.modules else None
        return self

    def admit(self, losses: dict[str, torch.Tensor]) -> bool:
        """True: run backward and the update (always, for a deferred guard, whose ``update`` drops a bad one)."""
        run_update, self.skip = self.guard.admit(self.index, losses, self.norms)
        return run_update

    def update(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()``, dropped on the device when a deferred guard's verdict says skip."""
        step_optimizer(optimizer, self.skip)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: object) -> None:
        if self.norms is None:
            return
        norms, self.norms = self.norms, None
        if error is None:
            norms.settle()
        else:  # a step that did not finish leaves no trace in the statistics either
            norms.pending = None
            norms.restore()


class _Unguarded(NonFiniteGuard):
    """No guard: every step's update runs, whatever its losses; nothing is checked, saved or read back."""

    def step(self, step: int, *modules: object) -> GuardedStep:
        return GuardedStep(self, step, ())

    def ok(self, step: int, losses: dict[str, torch.Tensor]) -> bool:
        return True


UNGUARDED: NonFiniteGuard = _Unguarded()
"""The step functions' default guard: the same code path as a real guard's, with every update admitted."""


def step_optimizer(optimizer: torch.optim.Optimizer, skip: torch.Tensor | None = None) -> None:
    """``optimizer.step()``; with a ``skip`` flag from ``NonFiniteGuard.skip_flag``, the update is dropped on the
    device where the flag is 1.0 (fused Adam's ``found_inf``): parameters, moments and step count stay as they were.
    """
    if skip is None:
        optimizer.step()
        return
    if not optimizer.defaults.get("fused"):  # only the fused kernels take found_inf: decide on the host (a sync)
        if not bool(skip):
            optimizer.step()
        return
    optimizer.grad_scale, optimizer.found_inf = None, skip
    try:
        optimizer.step()
    finally:
        del optimizer.grad_scale, optimizer.found_inf
