"""The command line: the contract's flag names, and one clear line for the user's mistakes."""

import subprocess
import sys

import pytest

from spotart.cli import build_parser, main
from spotart.train.checkpoints import CheckpointError, load_checkpoint

from .helpers import write_images


def _run(*args):
    return subprocess.run([sys.executable, "-m", "spotart", *args], capture_output=True, text=True, timeout=300)


def test_contract_flags_parse():
    args = build_parser().parse_args(["train-spot", "--data", "d", "--out", "o", "--image-size", "64",
                                      "--batch-size", "8", "--steps", "3", "--config", "c.yaml", "--set", "a=1",
                                      "--set", "b=2", "--resume", "--autoencoder", "ae.pt"])
    assert (args.image_size, args.batch_size, args.steps, args.set, args.resume, args.autoencoder) == (
        64, 8, 3, ["a=1", "b=2"], True, "ae.pt")
    assert build_parser().parse_args(["train-ae", "--out", "o", "--epochs", "2"]).epochs == 2


def test_missing_data_path_is_one_line_without_traceback(tmp_path):
    result = _run("train-ae", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run"), "--steps", "1")
    assert result.returncode == 2
    assert "data path does not exist" in result.stderr and "Traceback" not in result.stderr


def test_bad_set_value_is_reported(tmp_path, capsys):
    assert main(["train-ae", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--set", "lr=fast"]) == 2
    assert "config key 'lr' expects a number" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [["--set", "progress=false", "--set", "num_workers=0"]])
def test_stage1_checkpoint_where_stage2_expected(tmp_path, capsys, flags):
    data = write_images(tmp_path / "imgs", 8, size=40)
    common = ["--data", str(data), "--image-size", "32", "--batch-size", "4", "--steps", "1", *flags]
    assert main(["train-ae", "--out", str(tmp_path / "ae"), *common]) == 0
    # resuming a stage-2 run from a directory that holds a stage-1 run: refused before anything is read
    assert main(["train-spot", "--out", str(tmp_path / "ae"), "--resume", *common]) == 2
    assert "holds a train-ae run, not a train-spot run: choose another --out" in capsys.readouterr().err
    # the checkpoint itself names its kind too
    with pytest.raises(CheckpointError, match=r"is a stage-1 \(train-ae\) checkpoint; a stage-2 \(train-spot\)"):
        load_checkpoint(tmp_path / "ae" / "checkpoints" / "latest.pt", expect_stage="spot")
    assert main(["train-spot", "--out", str(tmp_path / "spot"), *common]) == 2
    assert "--autoencoder" in capsys.readouterr().err
