#!/usr/bin/env bash
# Session 2 of the issue-12 study: the rows official_study.sh lists that session 1 did not run, same commands,
# in priority order. Cheap random-init probes first, as a check across machines (session 1: AMD EPYC; here: Intel Xeon).
set -euo pipefail
cd /work/pin
export PYTHONPATH=/work/pin/src
PRESET=imagenette-64
WORK=/work/study64b/work
RES=/work/study64b/results
OFFICIAL=configs/official_stl10.yaml
BF16=config=$OFFICIAL,precision=auto
reproduce() {
  /work/main/.venv/bin/python -m spotart reproduce --preset "$PRESET" --work "$WORK" --results "$RES" \
    --set "knn_val=../shared/data/imagenette-96/val" --set "knn_every=100" \
    --set "knn_max_train=2000" --set "knn_max_val=1000" "$@"
}
reproduce --models random --seeds 0,1
reproduce --variant random_official:init=random,config=$OFFICIAL --seeds 0,1
reproduce --variant random_official_centred:init=random,config=$OFFICIAL,disc_padding=centred --seeds 0,1
reproduce --variant official_bf16_centred:$BF16,disc_padding=centred --seeds 0,1
reproduce --variant small_scale:config=configs/small_scale.yaml --seeds 1
reproduce --models full --seeds 1
reproduce --variant official_paper_loss:$BF16,repair_loss=paper
reproduce --variant official_identity_repair:$BF16,repair_init=identity
reproduce --variant official_pytorch_disc:$BF16,disc_init=default
reproduce --variant random_official_pytorch_disc:init=random,config=$OFFICIAL,disc_init=default   # the network official_pytorch_disc starts from
reproduce --variant official_bf16:$BF16 --models rotnet --seeds 1 --equal-time-to official_bf16   # issue 13: RotNet equal images, seed 1
reproduce --variant official_fp32:config=$OFFICIAL
echo ALL DONE
