#!/usr/bin/env bash
# Prepares benchmarks/gpu_check.sh, on a CPU machine that reaches the package registry and has ../shared/data:
#   .whl/        the wheels the GPU machine lacks (it has Python 3.12, torch, torchvision and no registry)
#   .gpu_data/   Imagenette-96 train and val packed as tar shards (`spotart pack`), re-encoded as JPEG at the
#                highest quality of QUALITIES at which train and val together stay under LIMIT_MIB
# Both folders are git-ignored; the device call carries them (see the top of gpu_check.sh). It prints the packed
# size and the size of everything that travels (the limit there is 64 MiB).
#
# Usage, from the repository root:  PYTHON=/path/to/venv/bin/python benchmarks/prepare_gpu_check.sh [SOURCE_DIR]
# SOURCE_DIR (default ../shared/data/imagenette-96) holds train/ and val/ class folders.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
SOURCE=${1:-../shared/data/imagenette-96}
DATA_OUT=.gpu_data/imagenette-96
LIMIT_MIB=48                  # train + val shards together (issue 14)
QUALITIES="60 55 50 45 40"    # JPEG qualities tried in turn (at 96 px, 65 and above do not fit: tar's 512-byte blocks)
WHEELS="webdataset==1.0.2 braceexpand==0.1.7"  # pinned as in pyproject.toml; pure Python, any platform

for split in train val; do
    [ -d "$SOURCE/$split" ] || { echo "prepare_gpu_check: $SOURCE/$split is not a folder" >&2; exit 2; }
done

echo "== wheels for Python 3.12 into .whl/: $WHEELS"
rm -rf .whl
mkdir -p .whl
# shellcheck disable=SC2086
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl $WHEELS
ls -l .whl

limit_bytes=$((LIMIT_MIB * 1024 * 1024))
packed=""
for quality in $QUALITIES; do
    echo "== packing $SOURCE/{train,val} at JPEG quality $quality into $DATA_OUT"
    rm -rf "$DATA_OUT"
    for split in train val; do
        PYTHONPATH=src "$PYTHON" -m spotart pack "$SOURCE/$split" --out "$DATA_OUT/$split" --quality "$quality" \
            --prefix "$split"
    done
    bytes=$(find "$DATA_OUT" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
    echo "train + val: $bytes bytes ($(awk "BEGIN {printf \"%.2f\", $bytes / 1048576}") MiB) at quality $quality"
    if [ "$bytes" -lt "$limit_bytes" ]; then
        packed=$quality
        break
    fi
done
if [ -z "$packed" ]; then
    echo "prepare_gpu_check: no quality in '$QUALITIES' packs under $LIMIT_MIB MiB" >&2
    exit 1
fi
echo "$packed" > .gpu_data/QUALITY

# everything that travels to the GPU machine: tracked and untracked-not-ignored files, plus the carried folders
travel=$( { git ls-files -z --cached --others --exclude-standard; find .whl .gpu_data -type f -print0; } \
    | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s}')
du -sh .gpu_data/imagenette-96/train .gpu_data/imagenette-96/val .whl
echo "packed: quality $packed, $(awk "BEGIN {printf \"%.2f\", $bytes / 1048576}") MiB (limit $LIMIT_MIB MiB);" \
     "travelling tree with .whl and .gpu_data: $(awk "BEGIN {printf \"%.2f\", $travel / 1048576}") MiB (limit 64 MiB)"
if [ "$travel" -ge $((64 * 1024 * 1024)) ]; then
    echo "prepare_gpu_check: the travelling tree is over 64 MiB" >&2
    exit 1
fi
