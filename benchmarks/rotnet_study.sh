#!/usr/bin/env bash
# The RotNet yardstick (issue 13): for each preset, the full method and RotNet on the same trunk, at equal images and
# at equal training time, two seeds, the kNN monitor every 100 steps from step 0, probes, one trajectories chart, and
# the gains over the random init each row started from (RESULTS/gains-PRESET.md).
#
#   bash benchmarks/rotnet_study.sh                      # both presets, as in RESULTS.md (hours: see below)
#   PRESETS=tiny KNN_EVERY=1 bash benchmarks/rotnet_study.sh   # a check of every command, in about a minute
#
# Settings (environment variables):
#   PRESETS    presets to run, in order (default "cifar-quick imagenette-64")
#   SEEDS      seeds of every row (default 0,1)
#   EQUAL_TO   the stage-2 row RotNet is matched against, images and time (default official_bf16, the best setting
#              of the official-code study: configs/official_stl10.yaml in bf16; `full` for the paper's defaults)
#   VARIANT    how EQUAL_TO is defined when it is a variant (default: official_bf16's definition; empty for `full`)
#   RANDOM_ROW the random-init row EQUAL_TO and RotNet start from, the zero of every gain (default: random_official,
#              the official init, for official_bf16; random, PyTorch's, for `full`)
#   RANDOM_VARIANT  how RANDOM_ROW is defined when it is a variant (default: random_official's definition; empty for
#              `random`)
#   KNN_EVERY  steps between kNN evaluations (default 100)
#   KNN_MAX_TRAIN, KNN_MAX_VAL  the monitor's memory and query subsets (default 2000 and 1000, as in RESULTS.md)
#   WORK_ROOT  where the work folders go (default benchmarks/runs): WORK_ROOT/reproduce-PRESET, shared with other
#              studies of the same preset, so a finished row is reused, not trained again
#   RESULTS    where the tables and charts go (default benchmarks/results; tiny: its work folder)
#   PY         the Python that runs spotart (default python)
#
# Every step is resumable: run the same command again after an interruption. The rows of EQUAL_TO must carry kNN
# rows (trained with the same --set knn_* keys); reproduce reuses a finished run as it is, so a row trained earlier
# without the monitor has no trajectory (trajectories.py then names the run that lacks one).
# The RotNet rows take every key of EQUAL_TO's config that RotNet has (data, optimiser, precision, knn_*, the trunk's
# disc_init and disc_padding: the same trunk under the same settings); rotnet_equal_time trains for the
# training seconds (wall_s) of the shared stage 1 plus EQUAL_TO's stage 2 at the same seed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-python}
PRESETS=${PRESETS:-"cifar-quick imagenette-64"}
SEEDS=${SEEDS:-0,1}
EQUAL_TO=${EQUAL_TO:-official_bf16}
if [ "$EQUAL_TO" = official_bf16 ]; then default_variant="official_bf16:config=configs/official_stl10.yaml,precision=auto"; else default_variant=""; fi
VARIANT=${VARIANT-$default_variant}
if [ "$EQUAL_TO" = official_bf16 ]; then default_random="random_official:init=random,config=configs/official_stl10.yaml"; else default_random=""; fi
RANDOM_VARIANT=${RANDOM_VARIANT-$default_random}
default_random_row=${RANDOM_VARIANT%%:*}
RANDOM_ROW=${RANDOM_ROW:-${default_random_row:-random}}
KNN_EVERY=${KNN_EVERY:-100}
KNN_MAX_TRAIN=${KNN_MAX_TRAIN:-2000}
KNN_MAX_VAL=${KNN_MAX_VAL:-1000}
WORK_ROOT=${WORK_ROOT:-benchmarks/runs}

for preset in $PRESETS; do
  work=$WORK_ROOT/reproduce-$preset
  results=${RESULTS:-benchmarks/results}
  case $preset in
    cifar-quick)   data=../shared/data/cifar10;       val=$data/test; size=32 ;;
    imagenette-64) data=../shared/data/imagenette-96; val=$data/val;  size=64 ;;
    tiny)          data=$work/data;                   val=$data/val;  size=32; results=${RESULTS:-$work/results} ;;
    *) echo "rotnet_study.sh: no data settings for preset $preset (cifar-quick, imagenette-64, tiny)" >&2; exit 2 ;;
  esac
  knn=(--set "knn_val=$val" --set "knn_every=$KNN_EVERY" --set "knn_max_train=$KNN_MAX_TRAIN" --set "knn_max_val=$KNN_MAX_VAL")
  variant=(); [ -n "$VARIANT" ] && variant+=(--variant "$VARIANT")
  [ -n "$RANDOM_VARIANT" ] && variant+=(--variant "$RANDOM_VARIANT")

  # 1. the reference row, its random init, RotNet at its images and RotNet for its time, every seed; each probed on
  #    conv1..conv5
  $PY -m spotart reproduce --preset "$preset" --work "$work" --results "$results" --seeds "$SEEDS" \
    "${variant[@]}" --models "$EQUAL_TO,rotnet,rotnet_equal_time,$RANDOM_ROW" --equal-time-to "$EQUAL_TO" "${knn[@]}"

  # 2. random inits on the kNN monitor's own subsets (the same KNN_MAX_TRAIN and KNN_MAX_VAL)
  $PY benchmarks/knn_checkpoints.py --train "$data/train" --val "$val" --image-size "$size" --random-seeds 0,1,2 \
    --max-train "$KNN_MAX_TRAIN" --max-val "$KNN_MAX_VAL" \
    --json "$work/knn_random.json"

  # 3. one chart and its table: kNN top-1 against wall time, RotNet (equal time) and the reference row, stage 1
  #    counted before it
  runs=()
  for seed in ${SEEDS//,/ }; do
    suffix=$([ "$seed" = 0 ] && echo "" || echo "-seed$seed")
    runs+=(--run "RotNet=$work/rotnet_equal_time$suffix/run" --run "$EQUAL_TO=$work/$EQUAL_TO$suffix/run")
  done
  $PY benchmarks/trajectories.py --out "$results/trajectories-$preset.png" --table "$results/trajectories-$preset.md" \
    "${runs[@]}" \
    --offset "$EQUAL_TO=$work/autoencoder/run" --random-init "$work/knn_random.json" \
    --title "kNN top-1 against training time, $preset (seeds $SEEDS)"

  # 4. the gains over the random init, per layer and seed: the reference row, RotNet at equal images and equal time
  seeds_json=$($PY -m spotart reproduce --preset "$preset" --work "$work" --results "$results" --print-results seeds)
  $PY benchmarks/gains.py --seeds-json "$seeds_json" --row "$EQUAL_TO=$RANDOM_ROW" \
    --row "rotnet=$RANDOM_ROW" --row "rotnet_equal_time=$RANDOM_ROW" | tee "$results/gains-$preset.md"
done
