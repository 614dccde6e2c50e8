"""``spotart bench``: its FLOP counting is exact, and one small run reports every key the issue asks for."""

from __future__ import annotations

import math

import pytest
import torch

from spotart import bench

from .helpers import decoder_upsamplings

REQUIRED = ("stage1_images_per_s", "stage2_images_per_s", "stage2_fraction_of_bf16_peak",
            "stage2_speedup_vs_fp32_eager", "data_images_per_s", "peak_memory_gib", "adam_step_s_fused",
            "adam_step_s_per_parameter", "data_vs_stage1_consumption", "data_vs_stage2_consumption",
            "device_augment_images_per_s", "bf16_matmul_tflops", "bf16_matmul_tflops_best",
            "stage2_fraction_of_bf16_peak_best", "stage1_images_per_s_best")


def test_count_flops_of_a_matrix_product_is_exact():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert bench.count_flops(lambda: a @ b) == 2 * 8 * 16 * 4


def test_time_steps_counts_images_per_second():
    calls = []
    rate = bench.time_steps(lambda: calls.append(1), images_per_step=10, warmup=2, steps=3,
                            device=torch.device("cpu"))
    assert len(calls) == 5 and rate > 0


def test_small_run_reports_every_key(image_folder, monkeypatch):
    result = _small_bench(image_folder, monkeypatch)
    for key in REQUIRED:
        assert key in result and math.isfinite(result[key]) and result[key] > 0, key
    # stage 2 runs the frozen autoencoder, the repair network and the discriminator: more work than stage 1
    assert result["stage2_gflop_per_image"] > result["stage1_gflop_per_image"] > 0
    assert result["stage2_images_per_s_best"] >= result["stage2_images_per_s"]
    assert result["stage2_tflops"] == pytest.approx(result["stage2_images_per_s"] * result["stage2_gflop_per_image"]
                                                    / 1e3)
    table = bench.format_table(result)
    assert "Adam step (disc.)" in table and "stage 2, fp32 eager" in table
    assert result["data_vs_stage1_consumption"] == pytest.approx(result["data_images_per_s"]
                                                                 / result["stage1_images_per_s"])
    assert result["device"] == "cpu" and result["peak_memory_kind"] == "max RSS of the process"
    assert "x what stage 1 consumes" in table and "augmentation on the CPU" in table


def _small_bench(image_folder, monkeypatch, device="cpu", set_pairs=None):
    real = bench.matmul_rates
    monkeypatch.setattr(bench, "matmul_rates", lambda dtype, device: real(dtype, device, size=256, seconds=0.05))
    folder = None if image_folder is None else str(image_folder)
    return bench.run_bench(folder, image_size=32, batch_size=4, steps=1, warmup=0, fp32_steps=1,
                           num_workers=0, device=device, set_pairs=set_pairs)


def test_data_rate_is_reported_against_both_stages_and_with_device_augmentation(image_folder):
    cfg = bench.build_config("train-ae", set_pairs=[f"data={image_folder}", "image_size=32", "batch_size=4",
                                                    "steps=10", "num_workers=0", "gpu_augment=true"])
    runtime = bench._runtime("fp32", "off", torch.device("cpu"))
    rate, timed = bench._data_rate(cfg, batches=2, runtime=runtime)
    assert rate > 0 and timed == 2 * 4
    assert bench.device_augment_rate(cfg, runtime, side=48, repeats=1) > 0


def test_cuda_without_cuda_is_one_clear_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    from spotart.cli import main

    assert main(["bench", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("spotart bench: error: --device cuda: no CUDA device is available here (torch.cuda.is_available() "
                   "is False); use --device cpu or --device auto")


def test_matmul_ceiling_uses_products_large_enough_for_the_device():
    assert bench.default_matmul_size(torch.device("cuda")) == 8192
    assert bench.default_matmul_size(torch.device("cpu")) == 4096
    sustained, best = bench.matmul_rates(torch.float32, torch.device("cpu"), size=64, seconds=0.01)
    assert 0 < sustained <= best


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_reports_the_same_keys_as_the_cpu(image_folder, monkeypatch):
    cpu = _small_bench(image_folder, monkeypatch, "cpu")
    cuda = _small_bench(image_folder, monkeypatch, "cuda", ["gpu_augment=true"])
    def keys(result):  # a CPU without fast bf16 measures its fp32 path against the fp32 ceiling instead
        return {key for key in result if "fraction_of_fp32" not in key}

    assert keys(cuda) == keys(cpu)
    assert cuda["device"].startswith("cuda") and cuda["peak_memory_kind"] == "max_memory_allocated"
    for key in REQUIRED:
        assert math.isfinite(cuda[key]) and cuda[key] > 0, key


def test_a_short_folder_is_gone_round_and_a_tiny_one_is_not_a_measurement(image_folder, tmp_path):
    """16 images give 4 batches of 4: timing 10 batches goes round the folder; 3 images fill no batch: no figure."""
    runtime = bench._runtime("fp32", "off", torch.device("cpu"))
    cfg = bench.build_config("train-ae", set_pairs=[f"data={image_folder}", "image_size=32", "batch_size=4",
                                                    "steps=10", "num_workers=0"])
    rate, timed = bench._data_rate(cfg, batches=10, runtime=runtime)
    assert timed == 40 > 16 and rate > 0
    from tests.helpers import write_images

    tiny = write_images(tmp_path / "tiny", 3)
    cfg = bench.build_config("train-ae", set_pairs=[f"data={tiny}", "image_size=32", "batch_size=4", "steps=10",
                                                    "num_workers=0"])
    assert bench._data_rate(cfg, batches=10, runtime=runtime) == (None, 0)


def test_without_a_data_set_the_data_figure_times_enough_bundled_images(monkeypatch, tmp_path):
    monkeypatch.setattr(bench, "DEFAULT_DATA", tmp_path / "absent")
    result = _small_bench(None, monkeypatch)
    assert result["data_images_per_s"] > 0 and result["data_images_timed"] == 10 * 4
    assert "JPEGs of 32 px cut from the bundled photographs" in result["data_source"]
    assert "not measured" not in bench.format_table(result)


def test_a_folder_too_small_for_two_batches_says_so(monkeypatch, tmp_path):
    from tests.helpers import write_images

    tiny = write_images(tmp_path / "tiny", 6)
    result = _small_bench(tiny, monkeypatch)
    assert result["data_images_per_s"] is None and result["data_vs_stage2_consumption"] is None
    assert "cannot fill two batches of 4" in result["data_not_measured"]
    assert "not measured: the data" in bench.format_table(result)


def test_the_instruction_sets_are_named_beside_the_ceiling(image_folder, monkeypatch):
    text = bench.instruction_sets(torch.device("cpu"))
    assert "PyTorch kernels:" in text
    flags = open("/proc/cpuinfo").read() if __import__("os").path.exists("/proc/cpuinfo") else ""
    if " amx_bf16" in flags:
        assert text.startswith("AMX-BF16")
    elif " avx512_bf16" in flags:
        assert text.startswith("AVX512-BF16")


def test_set_pairs_go_to_the_stages_that_have_the_key():
    pairs = ["precision=fp32", "decoder_upsampling=tf_legacy", "drop_rate=0.5", "no_such_key=1"]
    ae_pairs, spot_pairs = bench.split_set_pairs(pairs)
    assert ae_pairs == ["precision=fp32", "decoder_upsampling=tf_legacy", "no_such_key=1"]
    assert spot_pairs == ["precision=fp32", "drop_rate=0.5", "no_such_key=1"]  # unknown: the config names it


def test_both_stages_run_the_autoencoder_the_stage_1_keys_ask_for(image_folder, monkeypatch):
    built = []
    real = bench.new_autoencoder

    def recording(cfg):
        model = real(cfg)
        built.append((cfg.decoder_upsampling, cfg.ae_init))
        return model

    monkeypatch.setattr(bench, "new_autoencoder", recording)
    result = _small_bench(image_folder, monkeypatch, set_pairs=["decoder_upsampling=tf_legacy", "ae_init=official",
                                                                "drop_rate=0.5"])
    assert result["stage2_images_per_s"] > 0
    # stage 1, stage 2 (its frozen autoencoder) and the fp32 references of both: always the asked autoencoder
    assert built and set(built) == {("tf_legacy", "official")} and len(built) >= 2
    with pytest.raises(bench.ConfigError, match="no_such_key"):
        _small_bench(image_folder, monkeypatch, set_pairs=["no_such_key=1"])


def test_build_step_gives_the_scripts_the_stage_1_of_their_configs_and_the_stage_runtime():
    cfg, runtime, step = bench.build_step(2, 32, 4, ["drop_rate=0.5", "precision=fp32"],
                                          config="configs/official_stl10.yaml",
                                          ae_config="configs/official_stl10_ae.yaml", device="cpu")
    assert cfg.drop_rate == 0.5 and cfg.image_size == 32 and cfg.batch_size == 4
    assert runtime.dtype in (None, torch.float32)
    assert decoder_upsamplings(step) == {"tf_legacy"}  # the official stage 1's, not the default half-pixel
    # a stage-1 key in --set reaches the autoencoder too, and a stage-2 step runs on it
    _, _, default_step = bench.build_step(2, 32, 4, ["precision=fp32"], device="cpu")
    assert decoder_upsamplings(default_step) == {"half_pixel"}
    _, _, set_step = bench.build_step(2, 32, 4, ["precision=fp32", "decoder_upsampling=tf_legacy"], device="cpu")
    assert decoder_upsamplings(set_step) == {"tf_legacy"}
    result = step()
    assert result.losses and all(torch.isfinite(torch.as_tensor(value)) for value in result.losses.values())

    ae_cfg, ae_runtime, _ = bench.build_step(1, 32, 4, ["gemm_weight_grads=small_maps", "precision=fp32"],
                                             device="cpu")
    assert ae_cfg.gemm_weight_grads == "small_maps" and ae_runtime.gemm_weight_grads
    with pytest.raises(bench.ConfigError, match="stage must be 1 or 2"):
        bench.build_step(3, 32, 4, device="cpu")
