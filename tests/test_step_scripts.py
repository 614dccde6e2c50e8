"""The one-step benchmark scripts (``step_ab.py``, ``gemm_step_ab.py``, ``roofline.py``, ``profile_step.py``) and the
options they share (``step_options.py``): each builds the step its configs name, the autoencoder of stage 1 included."""

from __future__ import annotations

import argparse

import pytest

from spotart.bench import placeholder_pairs

from .helpers import REPO, benchmark_module, decoder_upsamplings

OFFICIAL = str(REPO / "configs" / "official_stl10.yaml")
OFFICIAL_AE = str(REPO / "configs" / "official_stl10_ae.yaml")


@pytest.fixture(scope="module")
def step_options():
    with benchmark_module("step_options") as module:
        yield module


@pytest.fixture(scope="module")
def gemm_step_ab(step_options):
    with benchmark_module("gemm_step_ab") as module:
        yield module


def parse(step_options, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    step_options.add_step_arguments(parser)
    return parser.parse_args(argv)


def test_the_shared_options_put_the_users_pairs_last_and_name_stage_1_in_the_header(step_options):
    args = parse(step_options, ["--image-size", "32", "--batch-size", "4", "--set", "steps=7",
                                "--config", OFFICIAL, "--ae-config", OFFICIAL_AE])
    assert step_options.config_pairs(args) == [*placeholder_pairs(32, 4), "steps=7"]  # the user's steps=7 wins
    assert placeholder_pairs(32, 4)[:3] == ["data=unused", "image_size=32", "batch_size=4"]
    assert f"stage 1 {OFFICIAL_AE}" in step_options.header(args) and "--set steps=7" in step_options.header(args)
    stage_1 = parse(step_options, ["--stage", "1", "--ae-config", OFFICIAL_AE])
    assert "stage 1 " not in step_options.header(stage_1)  # stage 1 freezes no autoencoder
    assert step_options.header(stage_1) == "stage 1, 96 px, batch 64, config defaults"


def test_gemm_step_ab_steps_on_the_autoencoder_its_stage_1_config_builds(gemm_step_ab, step_options):
    official = parse(step_options, ["--image-size", "32", "--batch-size", "2", "--config", OFFICIAL,
                                    "--ae-config", OFFICIAL_AE, "--set", "precision=fp32", "--set", "drop_rate=0.5"])
    cfg, ae_cfg = gemm_step_ab.configs_of(official)
    assert (cfg.drop_rate, cfg.image_size, ae_cfg.decoder_upsampling) == (0.5, 32, "tf_legacy")
    images = __import__("torch").rand(2, 3, 32, 32) * 2 - 1
    assert decoder_upsamplings(gemm_step_ab.make_step(2, cfg, ae_cfg, "off", images)) == {"tf_legacy"}
    # without --ae-config the default stage 1; a stage-1 key in --set reaches it
    default = parse(step_options, ["--image-size", "32", "--batch-size", "2", "--set", "precision=fp32"])
    assert decoder_upsamplings(gemm_step_ab.make_step(2, *gemm_step_ab.configs_of(default), "off", images)) == {
        "half_pixel"}
    keyed = parse(step_options, ["--image-size", "32", "--batch-size", "2", "--set", "decoder_upsampling=tf_legacy"])
    assert gemm_step_ab.configs_of(keyed)[1].decoder_upsampling == "tf_legacy"
    stage_1 = parse(step_options, ["--stage", "1", "--config", OFFICIAL_AE, "--image-size", "32"])
    cfg, ae_cfg = gemm_step_ab.configs_of(stage_1)
    assert cfg is ae_cfg and decoder_upsamplings(gemm_step_ab.make_step(1, cfg, ae_cfg, "off", images)) == {
        "tf_legacy"}


def test_step_ab_runs_both_trees_and_names_what_each_dropped(capsys, step_options):
    """Two child processes on this tree: a stage-1 key goes to the autoencoder (not dropped), an unknown key is
    dropped with a note in each, and the ratio of the two medians is printed."""
    with benchmark_module("step_ab") as step_ab:
        assert step_ab.main(["--other", str(REPO / "src"), "--image-size", "32", "--batch-size", "2",
                             "--rounds", "1", "--steps", "1", "--config", OFFICIAL, "--ae-config", OFFICIAL_AE,
                             "--set", "precision=fp32", "--set", "decoder_upsampling=tf_legacy",
                             "--set", "no_such_key=1"]) == 0
    out = capsys.readouterr().out
    assert "this: dropped no_such_key=1" in out and "other: dropped no_such_key=1" in out
    assert "dropped decoder_upsampling" not in out and "dropped --ae-config" not in out
    ratio = float(out.split("ratio this/other: ")[1].split("x")[0])
    assert ratio > 0
