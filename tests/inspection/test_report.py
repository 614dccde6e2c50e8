"""``spotart report``: one offline page with every figure, checked in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from spotart.cli import main
from spotart.inspection.charts import metric_curves
from spotart.inspection.html_page import image, page
from spotart.inspection.probe_results import find_probes, read_probe
from spotart.inspection.run_files import ReportError, best_knn_note, read_metrics

COUNT = 4  # fixed images in the report under test


def probe_json(path: Path, top1: list[float], model: str = "spot") -> Path:
    """A probe.json as ``spotart probe`` writes it: top-1 per layer at the top, details under "layers"."""
    layers = [f"conv{i}" for i in range(1, 6)]
    data = {**dict(zip(layers, top1)), "trunk_unchanged": True, "model": model, "train": "train", "val": "val",
            "classes": 10, "train_images": 500, "val_images": 200,
            "layers": {layer: {"pooled": f"{layer} pooled", "train_top1": 90.0} for layer in layers}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def images(self) -> list[dict[str, str]]:
        return [attrs for tag, attrs in self.tags if tag == "img"]


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


@pytest.fixture(scope="module")
def report(tmp_path_factory, spot_run) -> Path:
    root = tmp_path_factory.mktemp("report")
    trained = probe_json(root / "probe" / "probe.json", [41.2, 44.0, 45.5, 43.25, 40.0])
    random = probe_json(root / "random" / "probe.json", [30.0, 31.0, 29.0, 28.0, 27.0], model="random")
    out = root / "report.html"
    code = main(["report", str(spot_run), "--out", str(out), "--images", str(COUNT),
                 "--probe", str(trained), "--probe", str(random)])
    assert code == 0
    return out


def test_the_page_is_self_contained_and_every_image_is_an_inline_png(report):
    html = report.read_text()
    tags = parse(html)
    sources = [attrs["src"] for attrs in tags.images()]
    assert len(sources) == 3 * COUNT + 8 * COUNT + 6  # the mix, the panels, 4 curves, probe chart, training grid
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as picture:
            picture.verify()
    external = [attrs for tag, attrs in tags.tags for key in ("src", "href") if key in attrs
                and not attrs[key].startswith("data:")]
    assert external == [] and "<link" not in html


def test_the_page_holds_every_figure(report):
    html = report.read_text()
    alts = [attrs["alt"] for attrs in parse(html).images()]
    for alt in ("true keep mask", "predicted keep mask", "keep mask", "damaged decoding", "full repair",
                "unmasked repair", "twice through", "kept in both passes", "input"):
        assert alts.count(alt) == COUNT, alt
    assert alts.count("reconstruction") + alts.count("repaired") == COUNT + COUNT  # the mix, the panel column
    for title in ("Losses of the discriminator C", "Losses of the repair network R", "Accuracies of the discriminator",
                  "probe top-1 per layer", "latest training grid"):
        assert alts.count(title) == 1, title
    for heading in ("Real or repaired?", "Damage and repair", "Training curves", "Linear probe"):
        assert f"<h2>{heading}</h2>" in html
    assert "top-1 % spot (probe)" in html and "top-1 % random (random)" in html
    assert "<td>43.25</td>" in html and "<td>27.00</td>" in html and "conv3 pooled" in html
    assert re.search(r"C labels \d of 4 images correctly", html)
    assert "not available here" not in html  # the run's own data was found


def test_the_curves_cover_every_loss_and_accuracy(spot_run):
    rows = read_metrics(spot_run / "metrics.jsonl")
    plotted = {key for chart in metric_curves(rows) for key in chart.keys}
    wanted = {key for key in rows[-1] if key.startswith(("c_", "r_")) or "_acc" in key or "chance" in key}
    assert {"c_loss", "c_gan", "c_mask", "r_loss", "r_recon", "disc_acc", "mask_acc_fake"} <= wanted <= plotted


def test_probes_are_found_in_the_run_directory_and_read(tmp_path):
    probe_json(tmp_path / "probe.json", [1, 2, 3, 4, 5])
    probe_json(tmp_path / "b" / "probe.json", [6, 7, 8, 9, 10])
    (tmp_path / "a").mkdir()
    found = find_probes(tmp_path)
    assert found == [tmp_path / "probe.json", tmp_path / "b" / "probe.json"]
    result = read_probe(found[1], tmp_path)
    assert result.top1 == {"conv1": 6.0, "conv2": 7.0, "conv3": 8.0, "conv4": 9.0, "conv5": 10.0}
    assert result.label == "spot (b)" and "500 train images" in result.summary and "trunk unchanged" in result.summary
    (tmp_path / "bad.json").write_text(json.dumps({"model": "spot"}))
    with pytest.raises(ReportError, match="no per-layer top-1"):
        read_probe(tmp_path / "bad.json")
    with pytest.raises(ReportError, match="probe results not found"):
        find_probes(tmp_path, [tmp_path / "nope.json"])


def test_a_torn_metrics_line_is_skipped(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "c_loss": 0.5}\n{"step": 2, "c_lo')
    assert read_metrics(tmp_path / "metrics.jsonl") == [{"step": 1, "c_loss": 0.5}]


@pytest.mark.parametrize("which, message", [("ae", "is a train-ae run; the report needs a stage-2 run"),
                                            ("missing", "run directory not found")])
def test_a_wrong_run_directory_is_one_line(tiny_runs, tmp_path, capsys, which, message):
    run = tiny_runs.get(which, tmp_path / "missing")
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and not (tmp_path / "r.html").exists()


# ------------------------------------------------------------------------------------------ headless Chromium
def rendered_checks(chromium: str, page_path: Path, profile: Path) -> dict[str, str]:
    """The page's self-check attributes on <html> after Chromium loaded it (5 s of virtual time)."""
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", page_path.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    opening = re.search(r"<html[^>]*>", done.stdout)
    assert opening, done.stdout[:500]
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', opening.group(0)))


def test_every_image_loads_in_chromium_without_errors(report, chromium, tmp_path):
    expected = len(parse(report.read_text()).images())
    checks = rendered_checks(chromium, report, tmp_path / "profile")
    assert checks == {"images": str(expected), "images-loaded": str(expected), "error-count": "0"}


def test_the_chromium_check_catches_a_broken_image(chromium, tmp_path):
    good = image(_png(), "fine")
    broken = '<img src="data:image/png;base64,bm90IGEgcG5n" alt="broken">'
    path = tmp_path / "broken.html"
    path.write_text(page("broken", good + broken))
    checks = rendered_checks(chromium, path, tmp_path / "profile")
    assert checks["images"] == "2" and checks["images-loaded"] == "1"
    assert checks["error-count"] == "1" and checks["errors"] == "failed to load IMG"


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_knn_monitor_rows_get_their_own_chart():
    rows = [{"step": 1, "c_loss": 1.0, "images_per_s": 9.0}, {"step": 2, "epoch": 0, "knn_top1": 31.5}]
    charts = {chart.title: chart.keys for chart in metric_curves(rows)}
    assert charts == {"Losses of the discriminator C": ("c_loss",),
                      "kNN monitor of the features (top-1 %)": ("knn_top1",),
                      "Speed, schedule and housekeeping": ("images_per_s",)}


def test_fewer_than_two_images_is_refused(spot_run, tmp_path, capsys):
    assert main(["report", str(spot_run), "--images", "1", "--out", str(tmp_path / "r.html")]) == 2
    assert "--images must be at least 2" in capsys.readouterr().err


def test_the_best_knn_step_is_named_and_where_its_networks_are(tmp_path):
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    latest, best = checkpoints / "latest.pt", checkpoints / "best_knn.pt"
    assert best_knn_note(tmp_path / "run", latest) is None  # an unmonitored run says nothing
    (checkpoints / "best_knn.json").write_text(json.dumps({"step": 600, "layer": "conv3", "top1": 44.125}))
    note = best_knn_note(tmp_path / "run", latest)
    assert note.startswith("The best kNN step so far was step 600 (conv3 kNN top-1 44.1%)")
    assert f"--checkpoint {best}" in note
    assert best_knn_note(tmp_path / "run", best).startswith("These are the networks of the best kNN step so far: "
                                                            "step 600")
    (checkpoints / "best_knn.json").write_text("{torn")
    assert best_knn_note(tmp_path / "run", latest) is None
