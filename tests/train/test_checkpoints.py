"""Checkpoint files: lean periodic snapshots, one copy of each state, the shared autoencoder, old formats."""

from __future__ import annotations

import os

import pytest
import torch

from spotart.train.checkpoints import (
    CheckpointError,
    CheckpointManager,
    load_checkpoint,
    networks_only,
    save_checkpoint,
    state_digest,
)
from spotart.train.rundir import RunDir
from spotart.train.stage2 import autoencoder_from_payload


def _payload(step: int) -> dict:
    """What stage 2 saves, with tiny tensors: networks, a frozen autoencoder, two optimisers, random states."""
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    opt.step()  # so that the optimiser has a state to save
    with torch.no_grad():
        net.weight.fill_(float(step))  # which step's networks a file holds
    return {"stage": "spot", "format": 2, "step": step, "config": {"image_size": 32},
            "discriminator": net.state_dict(), "repair": None,
            "autoencoder": {"weight": torch.arange(6.0).view(2, 3)},
            "opt_c": opt.state_dict(), "opt_r": None, "rng": {"torch": torch.get_rng_state()}}


def _manager(tmp_path, keep=3, snapshot_optimizer=False) -> CheckpointManager:
    return CheckpointManager(RunDir(tmp_path / "run", writer_enabled=False), keep, snapshot_optimizer)


def test_periodic_snapshots_hold_the_networks_and_name_the_shared_autoencoder(tmp_path):
    manager = _manager(tmp_path)
    manager.save(_payload(2), 2)
    folder = manager.run.checkpoints
    assert sorted(p.name for p in folder.iterdir()) == ["autoencoder.pt", "latest.pt", "step_0000002.pt"]
    latest = load_checkpoint(manager.latest, for_resume=True)
    assert "opt_c" in latest and "rng" in latest and torch.equal(latest["autoencoder"]["weight"],
                                                                 torch.arange(6.0).view(2, 3))
    raw = torch.load(folder / "step_0000002.pt", weights_only=True)  # as written: no optimiser, no autoencoder
    assert "opt_c" not in raw and "rng" not in raw and "autoencoder" not in raw and raw["resumable"] is False
    assert raw["shared_parts"]["autoencoder"]["file"] == "autoencoder.pt"
    snapshot = load_checkpoint(folder / "step_0000002.pt")  # as read: the autoencoder is back
    assert torch.equal(snapshot["autoencoder"]["weight"], latest["autoencoder"]["weight"])
    assert torch.equal(snapshot["discriminator"]["weight"], torch.full((2, 3), 2.0))
    assert (folder / "step_0000002.pt").stat().st_size < manager.latest.stat().st_size


def test_the_final_snapshot_is_latest_under_a_second_name_and_survives_a_resumed_run(tmp_path):
    manager = _manager(tmp_path)
    manager.save(_payload(2), 2)
    manager.save(_payload(4), 4, final=True)
    final = manager.snapshot(4)
    assert os.path.samefile(final, manager.latest) and final.stat().st_nlink == 2  # one file, two names
    # a resumed run that goes on replaces latest.pt; step 4 keeps its own (full) state
    _manager(tmp_path).save(_payload(6), 6, final=True)
    assert not os.path.samefile(final, manager.latest)
    assert load_checkpoint(final, for_resume=True)["step"] == 4 and load_checkpoint(manager.latest)["step"] == 6
    assert torch.equal(load_checkpoint(final)["discriminator"]["weight"], torch.full((2, 3), 4.0))


def test_pruning_keeps_the_newest_snapshots_and_never_the_latest_state(tmp_path):
    manager = _manager(tmp_path, keep=2)
    for step in (2, 4, 6):
        manager.save(_payload(step), step, final=step == 6)
    names = sorted(p.name for p in manager.run.checkpoints.glob("step_*.pt"))
    assert names == ["step_0000004.pt", "step_0000006.pt"]
    assert load_checkpoint(manager.latest, for_resume=True)["step"] == 6
    assert load_checkpoint(manager.snapshot(4))["step"] == 4


def test_snapshot_optimizer_makes_every_snapshot_a_full_state_written_once(tmp_path):
    manager = _manager(tmp_path, snapshot_optimizer=True)
    manager.save(_payload(2), 2)
    snapshot = load_checkpoint(manager.snapshot(2), for_resume=True)
    assert "opt_c" in snapshot and "rng" in snapshot and os.path.samefile(manager.snapshot(2), manager.latest)
    assert not (manager.run.checkpoints / "autoencoder.pt").exists()  # nothing names it


def test_a_networks_only_snapshot_cannot_be_resumed_from(tmp_path):
    manager = _manager(tmp_path)
    manager.save(_payload(2), 2)
    with pytest.raises(CheckpointError, match="networks only"):
        load_checkpoint(manager.snapshot(2), for_resume=True)


def test_a_snapshot_without_its_autoencoder_file_still_gives_its_networks_and_says_what_is_missing(tmp_path):
    manager = _manager(tmp_path)
    manager.save(_payload(2), 2)
    alone = tmp_path / "copied" / "step_0000002.pt"
    alone.parent.mkdir()
    alone.write_bytes(manager.snapshot(2).read_bytes())
    payload = load_checkpoint(alone)
    assert torch.equal(payload["discriminator"]["weight"], torch.full((2, 3), 2.0))  # probe, export, spot need this
    with pytest.raises(CheckpointError, match=r"autoencoder\.pt, which is missing: copy the run's whole"):
        autoencoder_from_payload(payload, str(alone))


def test_a_replaced_autoencoder_file_is_refused(tmp_path):
    manager = _manager(tmp_path)
    manager.save(_payload(2), 2)
    part = manager.run.checkpoints / "autoencoder.pt"
    save_checkpoint(part, {"stage": "part", "format": 2, "key": "autoencoder", "value": {"weight": torch.zeros(2, 3)}})
    with pytest.raises(CheckpointError, match="digest differs"):
        load_checkpoint(manager.snapshot(2))


def test_a_resumed_session_reuses_the_autoencoder_file_already_there(tmp_path):
    _manager(tmp_path).save(_payload(2), 2)
    part = tmp_path / "run" / "checkpoints" / "autoencoder.pt"
    before = part.stat().st_mtime_ns
    _manager(tmp_path).save(_payload(4), 4)
    assert part.stat().st_mtime_ns == before
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "step_0000002.pt")["step"] == 2


def test_format_1_checkpoints_load_as_they_were(tmp_path):
    old = _payload(3) | {"format": 1}
    save_checkpoint(tmp_path / "old.pt", old)
    loaded = load_checkpoint(tmp_path / "old.pt", expect_stage="spot", for_resume=True)
    assert set(loaded) == set(old) and torch.equal(loaded["autoencoder"]["weight"], old["autoencoder"]["weight"])


def test_a_newer_format_is_refused_with_a_clear_line(tmp_path):
    save_checkpoint(tmp_path / "new.pt", _payload(1) | {"format": 99})
    with pytest.raises(CheckpointError, match="format 99; this spotart reads up to 2: update spotart"):
        load_checkpoint(tmp_path / "new.pt")


def test_networks_only_drops_every_optimiser_whatever_its_name():
    payload = _payload(1) | {"optimizer": _payload(1)["opt_c"], "classes": ["a", "b"]}
    lean = networks_only(payload)
    assert set(lean) == {"stage", "format", "step", "config", "discriminator", "repair", "autoencoder", "opt_r",
                         "classes", "resumable"}


def test_state_digest_sees_values_not_files():
    state = {"w": torch.arange(4.0)}
    assert state_digest(state) == state_digest({"w": torch.arange(4.0).clone()})
    assert state_digest(state) != state_digest({"w": torch.arange(4.0) + 1})
