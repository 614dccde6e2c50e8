"""Every command that writes somewhere refuses a wrong output path at once, in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spotart.cli import OUTPUTS, main
from spotart.outputs import OutputError, check_output_dir, run_kind

# each command with the least it needs to parse, and its output flag last (the tests append the path)
COMMANDS = {
    "train-ae": ["train-ae", "--out"],
    "train-spot": ["train-spot", "--autoencoder", "ae.pt", "--out"],
    "train-supervised": ["train-supervised", "--data", "labelled", "--out"],
    "demo": ["demo", "--out"],
    "probe": ["probe", "--train", "t", "--val", "v", "--init", "random", "--out"],
    "finetune": ["finetune", "--train", "t", "--test", "v", "--init", "random", "--out"],
    "reproduce --work": ["reproduce", "--preset", "tiny", "--work"],
    "reproduce --results": ["reproduce", "--preset", "tiny", "--results"],
    "spot": ["spot", "picture.png", "--checkpoint", "run", "--out-dir"],
    "voc-cls": ["voc-cls", "--out"],
    "voc-det": ["voc-det", "--out"],
    "voc-seg": ["voc-seg", "--out"],
    "voc-toy": ["voc-toy", "--out"],
    "report": ["report", "run", "--out"],
    "export": ["export", "ckpt.pt", "--out"],
    "import-official": ["import-official", "official.npz", "--out"],
}
FILE_OUTPUTS = {"report", "export", "import-official"}
# commands whose folder may not hold a run of another kind, and a kind each must refuse
OTHER_RUN = {"train-ae": "train-spot", "train-spot": "train-ae", "train-supervised": "train-spot",
             "demo": "train-spot", "reproduce --work": "train-ae", "reproduce --results": "train-spot",
             "voc-cls": "train-spot", "voc-det": "train-ae", "voc-seg": "train-supervised", "voc-toy": "train-spot"}


def _run(name, target, capsys):
    argv = COMMANDS[name] + [str(target)]
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def _assert_one_line(code, err, name, fragment):
    command = COMMANDS[name][0]
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith(f"spotart {command}: error: --"), err
    assert fragment in err[0], err


def test_the_table_covers_every_command_with_an_output_flag():
    assert {name.split()[0] for name in COMMANDS} == set(OUTPUTS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_wrong_kind_of_path_is_one_line(name, tmp_path, capsys):
    """A folder command given a file, a file command given a folder."""
    if name in FILE_OUTPUTS:
        target = tmp_path / "a_folder"
        target.mkdir()
        fragment = "is a folder: give a file name"
    else:
        target = tmp_path / "a_file"
        target.write_text("x")
        fragment = "is a file, not a folder"
    _assert_one_line(*_run(name, target, capsys), name, fragment)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_path_under_a_file_is_one_line(name, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    target = tmp_path / "a_file" / "sub" / "out.html"
    _assert_one_line(*_run(name, target, capsys), name, "a_file is a file, so no")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes through chmod")
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_an_unwritable_folder_is_one_line(name, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        _assert_one_line(*_run(name, locked / "out", capsys), name, "is not writable")
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_folder_the_user_may_not_write_is_one_line_even_as_root(name, tmp_path, capsys, monkeypatch):
    """The same check with the permission answer faked, so that it also runs where the tests are root."""
    from spotart import outputs

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(outputs.os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    _assert_one_line(*_run(name, locked / "out", capsys), name, "is not writable")


@pytest.mark.parametrize("name", sorted(OTHER_RUN))
def test_a_run_of_another_kind_is_one_line(name, tmp_path, capsys):
    target = tmp_path / "other"
    target.mkdir()
    (target / "config.yaml").write_text(f"command: {OTHER_RUN[name]}\nimage_size: 32\n")
    _assert_one_line(*_run(name, target, capsys), name, f"holds a {OTHER_RUN[name]} run")
    assert sorted(p.name for p in target.iterdir()) == ["config.yaml"]  # nothing was written there


def test_a_probe_may_write_into_the_run_it_evaluates(tmp_path):
    (tmp_path / "config.yaml").write_text("command: train-spot\n")
    assert check_output_dir(tmp_path, "--out", accept=None) == tmp_path
    assert run_kind(tmp_path) == "train-spot"


def test_a_training_run_may_continue_in_its_own_folder(tmp_path):
    (tmp_path / "config.yaml").write_text("command: train-spot\n")
    assert check_output_dir(tmp_path, "--out", accept={"train-spot"}) == tmp_path
    with pytest.raises(OutputError, match="holds a train-spot run, not a train-ae run"):
        check_output_dir(tmp_path, "--out", accept={"train-ae"})


def test_a_run_directory_under_a_file_from_python_is_a_clear_error(tmp_path, image_folder):
    from spotart.config import build_config
    from spotart.train.stage1 import train_autoencoder

    (tmp_path / "a_file").write_text("x")
    cfg = build_config("train-ae", set_pairs=[f"data={image_folder}", "image_size=32", "steps=1", "progress=false"])
    with pytest.raises(OutputError, match="a_file is a file, so no folder can be made under it"):
        train_autoencoder(cfg, str(tmp_path / "a_file" / "run"))
