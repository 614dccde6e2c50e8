#!/usr/bin/env bash
# Issue 13 on cifar-quick: the full method in the official code's best setting (official_bf16), its random init
# (random_official), RotNet at equal images and at equal time, seeds 0,1, the kNN monitor every 100 steps from
# step 0, then random-init kNN baselines and the trajectories chart. rotnet_study.sh takes one VARIANT, so it cannot
# add the random_official row: this script states the same commands by hand. Run from a pinned worktree
# (git worktree add --detach /work/pin HEAD), the CPU otherwise idle (the equal-time rows are timed).
set -euo pipefail
cd /work/pin
export PYTHONPATH=/work/pin/src
PY=/work/main/.venv/bin/python
DATA=../shared/data/cifar10
WORK=/work/cq/work
RES=/work/cq/results
OFFICIAL=configs/official_stl10.yaml
$PY -m spotart reproduce --preset cifar-quick --work "$WORK" --results "$RES" --seeds 0,1 \
  --variant "official_bf16:config=$OFFICIAL,precision=auto" \
  --variant "random_official:init=random,config=$OFFICIAL" \
  --models official_bf16,rotnet,rotnet_equal_time --equal-time-to official_bf16 \
  --set "knn_val=$DATA/test" --set knn_every=100 --set knn_max_train=2000 --set knn_max_val=1000
$PY benchmarks/knn_checkpoints.py --train "$DATA/train" --val "$DATA/test" --image-size 32 --random-seeds 0,1,2 \
  --max-train 2000 --max-val 1000 --json "$WORK/knn_random.json"
$PY benchmarks/trajectories.py --out "$RES/trajectories-cifar-quick.png" \
  --run "RotNet=$WORK/rotnet_equal_time/run" --run "official_bf16=$WORK/official_bf16/run" \
  --run "RotNet=$WORK/rotnet_equal_time-seed1/run" --run "official_bf16=$WORK/official_bf16-seed1/run" \
  --offset "official_bf16=$WORK/autoencoder/run" --random-init "$WORK/knn_random.json" \
  --title "kNN top-1 against training time, cifar-quick (seeds 0,1)"
echo ALL DONE
