"""The phases of ``benchmarks/gpu_check.sh`` under one deadline; writes ``gpu_check.json`` and ``gpu_check.md``.

Run it through gpu_check.sh, which installs spotart first and passes the time it started, so that the deadline
counts the install too. Phases, each a ``spotart`` process with its own timeout, the deadline checked before each:

1. ``spotart bench --json`` at the training size and batch: images/s of both stages and of the data pipeline,
   against the same run's bf16 matmul ceiling;
2. stage 1 (``train-ae``), then stage 2 (``train-spot``, with STAGE2_CONFIG or its fallback), each for as many
   steps as its share of the time left fits at the measured rate (the slower of the step and the data pipeline);
3. a linear probe of the stage-2 discriminator and one of a random init, trained on the training shards and
   measured on the validation shards;
4. the GPU tests (names with gpu, cuda, nccl or sync_batchnorm), on CUDA only, only if time is left and only if
   pytest is installed for the Python that runs the phases (nothing promises it on a GPU machine).

A phase that cannot run (no CUDA, no time left, its tool missing) is skipped with one line saying why. The exit
status is that of the phases that ran: 0 when each of them succeeded, 1 when one failed or the check stopped on an
error; a skipped phase does not count.

``--cpu-smoke`` runs the same phases on the CPU with tiny budgets on toy shards that it packs itself.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import shlex
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# the best stage-2 setting so far (issue "Exactly the official code, as one preset"), when this checkout has it;
# gpu_check.sh sets STAGE2_CONFIG at its top
STAGE2_CONFIG = os.environ.get("STAGE2_CONFIG", "configs/official_stl10.yaml")
STAGE2_FALLBACK = ["official_loss_quirk=true", "warmup_steps=60"]  # else configs/small_scale.yaml's stage-2 keys
GPU_TEST_SELECTION = "(gpu or cuda or nccl or sync_batchnorm) and not smoke"  # pytest -k over tests/ (not this check)
LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")


@dataclass
class Budget:
    """Sizes and seconds of one check. ``gpu()`` fits one H200 in 9 minutes; ``smoke()`` is seconds of CPU work."""

    deadline_s: float  # from the start of gpu_check.sh to the report
    image_size: int
    batch_size: int
    workers: int
    data_bound_check: float = 1.5  # use gpu_augment (if the config has it) when data/step consumption is below this
    stage1_share: float = 1 / 3  # of the training time; stage 2 gets the rest (its steps cost ~3x stage 1's)
    startup_s: float = 25.0  # per training process: imports, CUDA context, models, loader workers, checkpoints
    safety: float = 0.8  # measured rate x safety: logging, BatchNorm in train mode, the first cuDNN autotune
    probe_reserve_s: float = 120.0  # kept for the two probes when sizing the training
    margin_s: float = 20.0  # kept for the report and for the phases' own clean-up
    min_steps: int = 20
    max_steps: int = 200_000
    bench_timeout_s: float = 180.0
    probe_timeout_s: float = 90.0
    tests_min_s: float = 60.0  # the GPU tests run only when this much is left
    bench_flags: list[str] = field(default_factory=list)
    probe_flags: list[str] = field(default_factory=list)

    @classmethod
    def gpu(cls) -> Budget:
        return cls(deadline_s=540.0, image_size=96, batch_size=256, workers=12)

    @classmethod
    def smoke(cls) -> Budget:
        return cls(deadline_s=600.0, image_size=32, batch_size=8, workers=0, startup_s=5.0, probe_reserve_s=60.0,
                   min_steps=2, max_steps=2, bench_timeout_s=240.0, probe_timeout_s=240.0, tests_min_s=30.0,
                   bench_flags=["--steps", "1", "--warmup", "0", "--fp32-steps", "1"],
                   probe_flags=["--epochs", "1"])


def steps_for(seconds: float, images_per_s: float | None, budget: Budget) -> int:
    """Optimiser steps that fit ``seconds`` of one training process at a measured rate."""
    if not images_per_s or not math.isfinite(images_per_s):
        return budget.min_steps
    usable = max(0.0, seconds - budget.startup_s) * budget.safety
    return int(min(budget.max_steps, max(budget.min_steps, usable * images_per_s // budget.batch_size)))


class Check:
    """Runs the phases, keeps what each did, and writes the report."""

    def __init__(self, out: Path, work: Path, budget: Budget, started: float, smoke: bool, command: str,
                 install: str) -> None:
        self.out, self.work, self.budget, self.started, self.smoke = out, work, budget, started, smoke
        self.python = os.environ.get("PYTHON", sys.executable)
        self.phases: list[dict[str, Any]] = []
        self.log = (out / "gpu_check.log").open("a")
        self.report: dict[str, Any] = {
            "mode": "cpu-smoke" if smoke else "gpu", "command": command, "install": install,
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)), "deadline_s": budget.deadline_s,
            "settings": asdict(budget), "phases": self.phases, "stages": {}, "probes": {},
        }

    # ---------------------------------------------------------------------------------------------- plumbing
    def remaining(self) -> float:
        return self.budget.deadline_s - (time.time() - self.started)

    def spotart(self, *args: str) -> list[str]:
        return [self.python, "-m", "spotart", *args]

    def run(self, name: str, command: list[str], timeout: float) -> dict[str, Any]:
        """One phase: its own process group (loader workers die with it), killed at ``timeout`` seconds."""
        timeout = max(1.0, min(timeout, self.remaining() - 5))
        phase: dict[str, Any] = {"name": name, "command": shlex.join(command), "timeout_s": round(timeout, 1)}
        self.note(f"== {name} (timeout {timeout:.0f} s, {self.remaining():.0f} s to the deadline): {phase['command']}")
        memory = GpuMemory(self.smoke)
        start = time.time()
        proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=timeout)
            phase["timed_out"] = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                output, _ = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                output, _ = proc.communicate()
            phase["timed_out"] = True
        phase.update(returncode=proc.returncode, seconds=round(time.time() - start, 1),
                     peak_gpu_memory_mib=memory.stop())
        self.log.write(output)
        self.note(f"-- {name}: rc {proc.returncode}{' (timed out)' if phase['timed_out'] else ''}, "
                  f"{phase['seconds']} s")
        phase["output"] = output
        self.phases.append(phase)
        return phase

    def note(self, line: str) -> None:
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()

    def skip(self, name: str, reason: str) -> None:
        self.note(f"== {name}: skipped ({reason})")
        self.phases.append({"name": name, "skipped": reason})

    def missing_module(self, module: str) -> str | None:
        """Why ``module`` cannot be used by the phases' Python (PYTHON), tried by importing it there; None when it
        imports."""
        try:
            proc = subprocess.run([self.python, "-c", f"import {module}"], cwd=REPO, capture_output=True, text=True,
                                  timeout=120)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"{module} could not be imported by {self.python}: {err}"
        if proc.returncode == 0:
            return None
        error = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return f"{module} is not importable by {self.python}: {error}"

    # ------------------------------------------------------------------------------------------------ phases
    def data(self) -> tuple[str, str]:
        if not self.smoke:
            root = REPO / ".gpu_data" / "imagenette-96"
            if not (root / "train" / "index.json").is_file() or not (root / "val" / "index.json").is_file():
                raise SystemExit(f"gpu_check: no shards in {root}: run benchmarks/prepare_gpu_check.sh first")
            quality = root.parent / "QUALITY"
            self.report["data"] = {"train": str(root / "train"), "val": str(root / "val"),
                                   "jpeg_quality": quality.read_text().strip() if quality.is_file() else None}
            return str(root / "train"), str(root / "val")
        from spotart.data.pack import pack_folder
        from spotart.evaluation.toydata import write_toy_dataset

        train, val = write_toy_dataset(self.work / "toy", train_per_class=8, val_per_class=4, classes=3, size=40)
        shards = self.work / "shards"
        for split, folder in (("train", train), ("val", val)):
            pack_folder(str(folder), str(shards / split), shard_size=10, quality=90, prefix=split)
        self.report["data"] = {"train": str(shards / "train"), "val": str(shards / "val"), "jpeg_quality": "90"}
        return str(shards / "train" / "train-{000000..000002}.tar"), str(shards / "val")

    def bench(self, train: str) -> dict[str, Any]:
        b = self.budget
        device = self.device_flag("bench", "cpu" if self.smoke else "cuda")  # both modes: bench takes the flag
        phase = self.run("bench", self.spotart("bench", "--json", "--data", train, "--image-size", str(b.image_size),
                                               "--batch-size", str(b.batch_size), "--num-workers", str(b.workers),
                                               *device, *b.bench_flags), b.bench_timeout_s)
        lines = [line for line in phase["output"].splitlines() if line.startswith("{")]
        try:
            result = json.loads(lines[-1])
        except (IndexError, ValueError):
            self.note("bench gave no JSON: steps fall back to the minimum")
            return {}
        self.report["bench"] = result
        return result

    @staticmethod
    def device_flag(command: str, device: str) -> list[str]:
        """``--device`` where this checkout's ``spotart COMMAND`` has it (issue 14's GPU path adds it)."""
        from spotart.cli import build_parser

        commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
        options = commands.choices[command]._option_string_actions
        return ["--device", device] if "--device" in options else []

    @staticmethod
    def config_has(key: str) -> bool:
        from spotart.config import SpotConfig

        return hasattr(SpotConfig(), key)

    def train(self, stage: str, train: str, seconds: float, rate: float | None, extra: list[str]) -> Path | None:
        b = self.budget
        steps = steps_for(seconds, rate, b)
        command, out = ("train-ae", "ae") if stage == "stage1" else ("train-spot", "spot")
        run_dir = self.work / out
        keys = [f"num_workers={b.workers}", "progress=false", f"log_every={max(1, min(50, steps // 10))}",
                f"image_every={steps}", f"checkpoint_every={max(1, steps // 4)}"]
        args = [command, "--data", train, "--out", str(run_dir), "--image-size", str(b.image_size),
                "--batch-size", str(b.batch_size), "--steps", str(steps), *extra,
                *[f"--set={pair}" for pair in keys]]
        self.note(f"{stage}: {steps} steps from {seconds:.0f} s at {rate or float('nan'):.1f} img/s measured")
        phase = self.run(stage, self.spotart(*args), seconds + 15)
        rows = metrics_rows(run_dir / "metrics.jsonl")
        done = max((row["step"] for row in rows), default=0)
        rates = [row["images_per_s"] for row in rows if "images_per_s" in row][1:] or \
                [row["images_per_s"] for row in rows if "images_per_s" in row]
        train_rate = sorted(rates)[len(rates) // 2] if rates else None
        record = {"planned_steps": steps, "steps": done, "images": done * b.batch_size, "budget_s": round(seconds, 1),
                  "seconds": phase["seconds"], "timed_out": phase["timed_out"], "returncode": phase["returncode"],
                  "bench_images_per_s": rate, "train_images_per_s": train_rate,
                  "peak_gpu_memory_mib": phase["peak_gpu_memory_mib"],
                  "last": {k: v for k, v in (rows[-1] if rows else {}).items() if isinstance(v, (int, float))}}
        bench = self.report.get("bench", {})
        gflop, ceiling = bench.get(f"{stage}_gflop_per_image"), bench.get("bf16_matmul_tflops")
        if train_rate and gflop and ceiling:
            record["train_fraction_of_bf16_ceiling"] = train_rate * gflop / 1e3 / ceiling
        self.report["stages"][stage] = record
        checkpoint = run_dir / "checkpoints" / "latest.pt"
        return checkpoint if checkpoint.is_file() else None

    def probe(self, name: str, train: str, val: str, network: list[str]) -> None:
        b = self.budget
        args = ["probe", *network, "--train", train, "--val", val, "--out", str(self.work / f"probe-{name}"),
                "--workers", str(b.workers), "--no-cache", *b.probe_flags]
        phase = self.run(f"probe {name}", self.spotart(*args), b.probe_timeout_s)
        result = self.work / f"probe-{name}" / "probe.json"
        if phase["returncode"] == 0 and result.is_file():
            self.report["probes"][name] = json.loads(result.read_text())

    def gpu_tests(self) -> None:
        if not self.smoke and "cuda" not in str(self.report.get("bench", {}).get("device", "")):
            return self.skip("gpu tests", "no CUDA device")
        missing = self.missing_module("pytest")
        if missing:
            return self.skip("gpu tests", missing)
        if self.remaining() < self.budget.tests_min_s + self.budget.margin_s:
            return self.skip("gpu tests", f"{self.remaining():.0f} s left")
        selection = ["tests/test_gpu_check.py"] if self.smoke else ["tests"]  # the smoke checks the plumbing only
        phase = self.run("gpu tests", [self.python, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                                       "-k", GPU_TEST_SELECTION, *selection, "-m", "not slow or slow"],
                         self.remaining() - self.budget.margin_s)
        summary = [line for line in phase["output"].splitlines() if re.search(r"\d+ (passed|skipped|failed)", line)]
        self.report["gpu_tests"] = {"selection": GPU_TEST_SELECTION, "returncode": phase["returncode"],
                                    "summary": summary[-1].strip("= ") if summary else None}

    # ------------------------------------------------------------------------------------------------ the run
    def main(self) -> int:
        """The phases in order; the report is written whatever happens (an error is recorded in it)."""
        try:
            self.phases_in_order()
        except Exception as err:  # noqa: BLE001 - a one-shot run on a lent GPU must still leave its report
            self.report["error"] = f"{type(err).__name__}: {err}"
            self.note(f"gpu_check: stopped by {self.report['error']}\n{traceback.format_exc()}")
        finally:
            self.finish()
        failed = [p["name"] for p in self.phases if p.get("returncode", 0) != 0]  # skipped phases have none
        if failed:
            print(f"gpu_check: exit status 1: phase {', '.join(failed)} failed", file=sys.stderr)
        return 1 if failed or "error" in self.report else 0

    def phases_in_order(self) -> None:
        b = self.budget
        train, val = self.data()
        bench = self.bench(train)
        data_rate = bench.get("data_images_per_s")
        extra_spot: list[str] = []
        use_gpu_augment = (not self.smoke and (bench.get("data_vs_stage2_consumption") or math.inf) < b.data_bound_check
                           and self.config_has("gpu_augment"))
        extra_common = ["--set=gpu_augment=true"] if use_gpu_augment else []
        self.report["gpu_augment"] = use_gpu_augment
        stage2_config = REPO / STAGE2_CONFIG
        extra_spot = ["--config", STAGE2_CONFIG] if stage2_config.is_file() else \
            [f"--set={pair}" for pair in STAGE2_FALLBACK]
        self.report["stage2_setting"] = " ".join(extra_spot)

        def rate(stage: str) -> float | None:
            step_rate = bench.get(f"{stage}_images_per_s")
            if step_rate and data_rate and not use_gpu_augment:
                return min(step_rate, data_rate)  # a step cannot run faster than the loader feeds it
            return step_rate

        training = self.remaining() - b.probe_reserve_s - b.margin_s
        ae = self.train("stage1", train, training * b.stage1_share, rate("stage1"), extra_common)
        spot = None
        if ae is None:
            self.skip("stage2", "stage 1 left no checkpoint")
        else:
            seconds = self.remaining() - b.probe_reserve_s - b.margin_s
            spot = self.train("stage2", train, seconds, rate("stage2"),
                              ["--autoencoder", str(ae), *extra_spot, *extra_common])
        if spot is not None:
            self.probe("trained", train, val, ["--checkpoint", str(spot)])
        else:
            self.skip("probe trained", "no stage-2 checkpoint")
        self.probe("random", train, val, ["--init", "random", "--image-size", str(b.image_size)])
        self.gpu_tests()

    def finish(self) -> None:
        report = self.report
        report["wall_s"] = round(time.time() - self.started, 1)
        report["peak_host_rss_gib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        report["peak_gpu_memory_mib"] = max((p.get("peak_gpu_memory_mib") or 0 for p in self.phases), default=0) or None
        report["machine"] = {"python": platform.python_version(), "host": platform.node(), **versions()}
        for phase in self.phases:
            phase.pop("output", None)
        (self.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
        (self.out / "gpu_check.md").write_text(markdown(report))
        self.note(f"gpu_check: {report['wall_s']} s of {report['deadline_s']:.0f}; wrote {self.out}/gpu_check.json, "
                  "gpu_check.md, gpu_check.log")
        self.log.close()


class GpuMemory:
    """Peak memory used on the GPU while a phase runs, sampled by ``nvidia-smi`` every 200 ms (None without it)."""

    def __init__(self, smoke: bool) -> None:
        self.proc = None
        if not smoke:
            try:
                self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                              "-lms", "200"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                             text=True)
            except OSError:
                self.proc = None

    def stop(self) -> float | None:
        if self.proc is None:
            return None
        self.proc.terminate()
        output, _ = self.proc.communicate()
        values = [float(v) for v in output.split() if re.fullmatch(r"\d+(\.\d+)?", v)]
        return max(values) if values else None


def metrics_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a line torn by a timeout
    return [row for row in rows if "step" in row]


def versions() -> dict[str, Any]:
    """Library versions and the GPU's name, without starting CUDA in this process (nvidia-smi names the GPU)."""
    import torch
    import torchvision

    gpu = None
    try:
        names = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                               text=True, timeout=30).stdout.split("\n")
        gpu = names[0].strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"torch": torch.__version__, "torchvision": torchvision.__version__, "cuda": torch.version.cuda, "gpu": gpu}


def _num(value: Any, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    bench, stages, probes = report.get("bench", {}), report["stages"], report["probes"]
    machine = report.get("machine", {})
    lines = [f"# spotart GPU check ({report['mode']})", "",
             f"- command: `{report['command']}`",
             f"- started {report['started']}; {report['wall_s']} s wall clock of a {report['deadline_s']:.0f} s "
             f"deadline; install: {report['install']}",
             f"- machine: {machine.get('gpu') if report['mode'] == 'gpu' else 'CPU'}, torch {machine.get('torch')}, "
             f"CUDA {machine.get('cuda')}, Python {machine.get('python')}",
             f"- data: {report.get('data', {}).get('train')} / {report.get('data', {}).get('val')} (JPEG quality "
             f"{report.get('data', {}).get('jpeg_quality')}); stage 2: `{report.get('stage2_setting')}`; "
             f"gpu_augment: {report.get('gpu_augment')}", "",
             "## Throughput (`spotart bench`)", "",
             "| | value |", "| --- | --- |",
             f"| path | {bench.get('path', 'n/a')} |",
             f"| bf16 matmul ceiling | {_num(bench.get('bf16_matmul_tflops'), 2)} TFLOP/s |"]
    for stage in ("stage1", "stage2"):
        fraction = bench.get(f"{stage}_fraction_of_bf16_peak")
        lines.append(f"| {stage} step | {_num(bench.get(f'{stage}_images_per_s'))} img/s, "
                     f"{_num(None if fraction is None else 100 * fraction)}% of the ceiling |")
    lines += [f"| data pipeline | {_num(bench.get('data_images_per_s'))} img/s "
              f"({_num(bench.get('data_vs_stage2_consumption'), 2)}x stage 2's consumption) |",
              f"| peak memory (bench) | {_num(bench.get('peak_memory_gib'), 2)} GiB |", "",
              "## Training", "",
              "| stage | steps (planned) | images | wall s | img/s in training | % of ceiling | peak GPU MiB |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for stage, record in stages.items():
        fraction = record.get("train_fraction_of_bf16_ceiling")
        lines.append(f"| {stage} | {record['steps']} ({record['planned_steps']}) | {record['images']:,} | "
                     f"{record['seconds']}{' (timed out)' if record['timed_out'] else ''} | "
                     f"{_num(record['train_images_per_s'])} | {_num(None if fraction is None else 100 * fraction)} | "
                     f"{_num(record['peak_gpu_memory_mib'], 0)} |")
    lines += ["", "Peak GPU memory: the most `nvidia-smi` reported while the stage ran (CUDA context included).",
              "", "## Linear probe top-1 (%) on the validation shards", "",
              "| layer | stage-2 discriminator | random init |", "| --- | --- | --- |"]
    for layer in LAYERS:
        lines.append(f"| {layer} | {_num(probes.get('trained', {}).get(layer), 2)} | "
                     f"{_num(probes.get('random', {}).get(layer), 2)} |")
    lines += ["", "## Phases", "", "| phase | wall s | exit | note |", "| --- | --- | --- | --- |"]
    for phase in report["phases"]:
        note = phase.get("skipped") or ("timed out" if phase.get("timed_out") else "")
        lines.append(f"| {phase['name']} | {phase.get('seconds', '')} | {phase.get('returncode', '')} | {note} |")
    if report.get("error"):
        lines += ["", f"**Stopped by an error:** {report['error']} (traceback in gpu_check.log)"]
    tests = report.get("gpu_tests")
    if tests:
        lines += ["", f"GPU tests (`pytest -k '{tests['selection']}'`): {tests['summary']}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="where gpu_check.json, gpu_check.md and gpu_check.log go")
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny budgets on the CPU, toy shards")
    parser.add_argument("--started", type=float, default=time.time(), help="epoch seconds gpu_check.sh started")
    parser.add_argument("--work", type=Path, help="run directories (default: a folder under /tmp)")
    parser.add_argument("--install", default="unknown", help="how spotart was installed (for the report)")
    parser.add_argument("--command", default="benchmarks/gpu_check.sh", help="the command line (for the report)")
    args = parser.parse_args()
    budget = Budget.smoke() if args.cpu_smoke else Budget.gpu()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(f"/tmp/spotart-gpu-check-{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True)
    return Check(args.out, work, budget, args.started, args.cpu_smoke, args.command, args.install).main()


if __name__ == "__main__":
    sys.exit(main())
