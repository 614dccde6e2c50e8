#!/usr/bin/env bash
# One-GPU validation of spotart in at most 9 minutes wall clock on one H200 (issue 14): `spotart bench` on CUDA;
# stage 1 then stage 2 at 96 px, batch 256, on Imagenette-96 tar shards, each for the steps its share of the time
# fits at the measured rate; a linear probe of the result and of a random init on the Imagenette-96 val shards; the
# GPU tests if time is left and pytest is installed. Writes OUT_DIR/gpu_check.json, gpu_check.md and gpu_check.log.
# The phases and the deadline are in benchmarks/gpu_check.py; every phase has its own timeout, and the deadline
# counts from here. A phase that cannot run (no CUDA, no time left, pytest missing) is skipped with one line saying
# why; the exit status is 0 when every phase that ran succeeded (2 when spotart itself cannot be imported).
#
# Before, on a CPU machine with the package registry and ../shared/data (fills the git-ignored .whl/ and
# .gpu_data/, about 48 MiB):   PYTHON=.venv/bin/python benchmarks/prepare_gpu_check.sh
# The device call, from the repository root of the checkout that has .whl/ and .gpu_data/:
#   run(command="bash benchmarks/gpu_check.sh $OUT", carry=[".whl", ".gpu_data"], timeout_s=600)
# The same phases on the CPU with tiny budgets on toy shards (about a minute; tests/test_gpu_check.py runs it):
#   benchmarks/gpu_check.sh --cpu-smoke OUT_DIR
set -uo pipefail
STARTED=$(date +%s)
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}   # the GPU machine's python3 holds torch 2.11 and torchvision 0.26
# stage 2's setting: this config file when the checkout has it, else --set official_loss_quirk=true
# --set warmup_steps=60 (configs/small_scale.yaml's stage-2 keys); sizes and seconds: Budget in gpu_check.py
STAGE2_CONFIG=${STAGE2_CONFIG:-configs/official_stl10.yaml}
SITE=${SITE:-/tmp/spotart-site}
SMOKE=""
if [ "${1:-}" = "--cpu-smoke" ]; then
    SMOKE="--cpu-smoke"
    shift
fi
OUT_DIR=${1:?usage: benchmarks/gpu_check.sh [--cpu-smoke] OUT_DIR}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 PYTHON STAGE2_CONFIG

if [ -n "$SMOKE" ]; then
    # the CPU, whatever the machine has; this checkout's sources on the path of the Python that is running
    export CUDA_VISIBLE_DEVICES=""
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    INSTALL="PYTHONPATH=src (cpu smoke)"
else
    # no registry on the GPU machine: the carried wheels, then spotart itself, all without dependencies
    if compgen -G ".whl/*.whl" > /dev/null; then
        timeout 60 "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$SITE" .whl/*.whl || echo "gpu_check: installing .whl/*.whl failed" >&2
    fi
    if timeout 90 "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir \
            --upgrade --target "$SITE" . ; then
        export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
        INSTALL="pip install --no-index --no-deps --target $SITE (spotart and .whl/*.whl)"
    else
        export PYTHONPATH="$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
        INSTALL="PYTHONPATH=src (pip install of spotart failed), .whl/*.whl in $SITE"
    fi
    "$PYTHON" -c "import braceexpand, spotart; print('spotart from', spotart.__file__)" || {
        echo "gpu_check: spotart or braceexpand cannot be imported (carry .whl: benchmarks/prepare_gpu_check.sh)" >&2
        exit 2
    }
fi

exec "$PYTHON" benchmarks/gpu_check.py $SMOKE "$OUT_DIR" --started "$STARTED" --install "$INSTALL" \
    --command "benchmarks/gpu_check.sh $SMOKE $OUT_DIR"
