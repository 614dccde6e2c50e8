#!/usr/bin/env bash
# The side-by-side study of issue 12: the paper's defaults, configs/small_scale.yaml, the official preset, the official
# preset with the centred grid, the official preset with each of the top three differences (FIDELITY.md sect. 6)
# reverted, and a random-init row for each initialisation scheme; all from one stage 1, in one work folder.
#
# Every row is one `spotart reproduce` invocation. Each is resumable: run the script again (or the one line) after an
# interruption and it goes on where it stopped; finished rows are skipped. The table is rewritten after every row:
# benchmarks/results/reproduce-imagenette64.md (and .json, -seeds.json). Per row, in WORK/<row>[-seed<k>]/run:
# metrics.jsonl holds C's real/fake and mask accuracies every 10 steps and the kNN top-1 of conv2, conv3 and conv5
# from step 0 every KNN_EVERY steps; WORK/timing.json the wall time of each row's training and probe.
#
#   bash benchmarks/official_study.sh                    # the study (imagenette-64: 64 px, batch 64, 1,000 steps)
#   PRESET=tiny WORK=/tmp/study bash benchmarks/official_study.sh   # a check of every invocation (minutes)
#
# Notes. The official rows run in bf16 (`precision=auto`, the variant `official_bf16` and the rows built on it):
# fp32 costs 2.6-4x the time on a CPU, and FIDELITY.md ranks bf16 (D5) low-to-medium; one row (`official_fp32`)
# measures what fp32 changes. The shared stage 1 is the reproduce driver's (PyTorch init), the same for every row;
# configs/official_stl10_ae.yaml is not used here. KNN_MAX_TRAIN/KNN_MAX_VAL are the monitor's subsets (RESULTS.md
# used 2000/1000). Times measured on idle 2-core machines (RESULTS.md): stage 1 4.7 min on an AMD EPYC, 2.5 min on
# an Intel Xeon with AMX; a bf16 stage-2 row about 16 and 11 min; a probe under half a minute. The script trains 12
# stage-2 rows and probes 8 random inits, then prints the gains (benchmarks/gains.py). RESULTS_DIR: the tables'
# folder (default benchmarks/results; tiny: WORK/results); PY: the Python that runs gains.py.
set -euo pipefail

PRESET=${PRESET:-imagenette-64}
WORK=${WORK:-benchmarks/runs/reproduce-$PRESET}
if [ "$PRESET" = tiny ]; then  # reproduce's own defaults for the tiny preset: toy data and tables in the work folder
  KNN_VAL=${KNN_VAL:-$WORK/data/val}
  RESULTS_DIR=${RESULTS_DIR:-$WORK/results}
else
  KNN_VAL=${KNN_VAL:-../shared/data/imagenette-96/val}
  RESULTS_DIR=${RESULTS_DIR:-benchmarks/results}
fi
KNN_EVERY=${KNN_EVERY:-100}
KNN_MAX_TRAIN=${KNN_MAX_TRAIN:-2000}
KNN_MAX_VAL=${KNN_MAX_VAL:-1000}
SPOTART=${SPOTART:-python -m spotart}
OFFICIAL=configs/official_stl10.yaml

reproduce() {
    $SPOTART reproduce --preset "$PRESET" --work "$WORK" --results "$RESULTS_DIR" --set "knn_val=$KNN_VAL" \
      --set "knn_every=$KNN_EVERY" --set "knn_max_train=$KNN_MAX_TRAIN" --set "knn_max_val=$KNN_MAX_VAL" "$@"
}

BF16=config=$OFFICIAL,precision=auto
# the first four rows: two seeds each
reproduce --models full --seeds 0,1                                                   # the paper's defaults
reproduce --variant small_scale:config=configs/small_scale.yaml --seeds 0,1          # configs/small_scale.yaml
reproduce --variant official_bf16:$BF16 --seeds 0,1                                  # the official preset (bf16)
reproduce --variant official_bf16_centred:$BF16,disc_padding=centred --seeds 0,1     # ... with the centred grid
# the official preset with each of the top three differences reverted to this project's default: one seed each
reproduce --variant official_paper_loss:$BF16,repair_loss=paper                      # D1+D2: R's objective
reproduce --variant official_identity_repair:$BF16,repair_init=identity              # D3: R's init
reproduce --variant official_pytorch_disc:$BF16,disc_init=default                    # D4: C's init
reproduce --variant official_fp32:config=$OFFICIAL                                   # D5: the preset as it is, fp32
# the networks the rows start from: PyTorch's init (symmetric padding), the official init (TF SAME padding), and the
# official init with the centred grid; probes only, two seeds each
reproduce --models random --seeds 0,1
reproduce --variant random_official:init=random,config=$OFFICIAL --seeds 0,1
reproduce --variant random_official_centred:init=random,config=$OFFICIAL,disc_padding=centred --seeds 0,1
# the network official_pytorch_disc starts from: PyTorch's init with the preset's TF SAME padding
reproduce --variant random_official_pytorch_disc:init=random,config=$OFFICIAL,disc_init=default --seeds 0,1

# gains per layer and seed, each row against the random init it started from (same scheme, seed and work folder)
PY=${PY:-python}
SEEDS_JSON=$($SPOTART reproduce --preset "$PRESET" --work "$WORK" --results "$RESULTS_DIR" --print-results seeds)
$PY benchmarks/gains.py --seeds-json "$SEEDS_JSON" \
  --row full=random --row small_scale=random --row official_bf16=random_official \
  --row official_bf16_centred=random_official_centred --row official_paper_loss=random_official \
  --row official_identity_repair=random_official --row official_pytorch_disc=random_official_pytorch_disc \
  --row official_fp32=random_official
