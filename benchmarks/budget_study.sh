#!/usr/bin/env bash
# The budget study of issue 24: what the official preset learns with budget (1,000, 4,000 and 16,000 stage-2 steps)
# beside RotNet on the same trunk, and the paper's ablations (plus two levers of ours) at 4,000 steps.
#
# How to run the budget study
#
#   bash benchmarks/budget_study.sh                 # start it, or go on where it stopped: the same command resumes
#   MAX_STEPS=1 bash benchmarks/budget_study.sh     # the next pending row only (a session with little time)
#   ONLY="budget-1k/rotnet budget-4k/rotnet" bash benchmarks/budget_study.sh
#                                                   # these rows only, still in priority order (cheap rows first
#                                                   # when a session cannot finish a long one)
#   DRY_RUN=1 bash benchmarks/budget_study.sh       # each step's state (done, started, pending) and every command
#                                                   # it would run; runs and writes nothing
#   REPORT_ONLY=1 bash benchmarks/budget_study.sh   # rewrite the tables and charts from what is done
#   TINY=1 bash benchmarks/budget_study.sh          # smoke test of the whole chain: preset tiny, 2/4/8 stage-2
#                                                   # steps, in benchmarks/runs/budget-study-tiny (minutes)
#
# Run it from a checkout of one commit of main, alone on an idle machine. On its first start it records that commit
# (WORK_ROOT/commit) and the CPU (WORK_ROOT/cpu: /proc/cpuinfo's model name and its amx_bf16/avx512_bf16 flags,
# which decide whether precision=auto is bf16). Later starts refuse, in one line, a checkout whose src/, configs/ or
# pyproject.toml differ from the pinned commit or carry uncommitted changes there (ALLOW_OTHER_COMMIT=1 goes on
# anyway); commits that touch nothing else, such as the results this script commits, are accepted. A row's seeds
# never mix machines: the CPU each row started on is kept in WORK_ROOT/cpus.tsv, and a row (any of its seeds, or a
# resume of an unfinished one) is refused on another CPU model; RotNet at equal time is refused on a CPU other than
# the one its reference row and stage 1 ran on (their seconds are its budget). WORK_ROOT/steps.log says which
# commit and CPU started each step.
#
# One step is one `spotart reproduce` invocation for one row at one seed (with the random network it starts from,
# `random_official` at that seed: a probe of about half a minute, so that every finished row has its gains at
# once). A finished step (every probe.json there) is skipped; an interrupted one goes on from its run's
# checkpoints/latest.pt (reproduce resumes an unfinished run by itself, with every random state and the data
# position: the result of an uninterrupted run). After each step the tables and charts are rewritten under RESULTS
# and the `git add/commit` line for them is printed (COMMIT=1 runs it).
#
# Layout. Stage 1 is trained once, in WORK_ROOT/stage1 (`--models autoencoder`: the preset's 500 steps of batch 64
# with every other key of configs/official_stl10_ae.yaml, given as --ae-set: reproduce has no config file for stage
# 1), then linked into each budget's work folder (WORK_ROOT/budget-1k, -4k, -16k: reproduce has one `rotnet` and one
# `rotnet_equal_time` row per work folder, so each budget needs its own). Stage 2 is configs/official_stl10.yaml with
# precision=auto at the preset's 64 px and batch 64. Rows, in priority order:
#   1. stage 1 (and the probe of its encoder)
#   2. official_1k seeds 0, 1; official_4k seeds 0, 1; official_16k seed 0 (LONG_SEEDS: more, after row 7)
#   3. RotNet on as many images: budget-1k seeds 0, 1; budget-4k seeds 0, 1; budget-16k seed 0
#   4. RotNet for as long as stage 1 + official_4k's stage 2 (rotnet_equal_time in budget-4k), seeds 0, 1
#   5. the random networks each row starts from (random_official per folder and seed; already probed with the rows)
#   6. ablations at 4,000 steps, ABLATION_SEEDS (default 0): repair=none, repair=unmasked, passes=2,
#      mask_loss_weight=0
#   7. levers at 4,000 steps, LEVER_SEEDS (default 0): mask_loss_weight=1.0, drop_rate=0.5
# Results: RESULTS/<folder>/reproduce-imagenette64.{md,json,-seeds.json} (reproduce's own tables, one per work
# folder) and RESULTS/budget-study.md (the budget table: rows x budget, best-layer gain = best top-1 minus the random
# start's best top-1, mean ± sd where two seeds exist; each ablation and lever against the official seeds' range;
# per-layer gains; images and training time; the kNN trajectory; C's accuracies over time), budget-study.png
# (best-layer gain against images seen) and trajectories-<folder>.png, all by benchmarks/budget_report.py.
#
# Settings (environment variables):
#   WORK_ROOT  work folders (default benchmarks/runs/budget-study; TINY: benchmarks/runs/budget-study-tiny)
#   RESULTS    tables and charts (default benchmarks/results/budget-study; TINY: WORK_ROOT/results)
#   PY         the Python that runs spotart and the report (default .venv/bin/python when there is one); spotart
#              is imported from this checkout's src/ (PYTHONPATH), so a pinned worktree may use main's .venv
#   KNN_EVERY  steps between kNN evaluations per budget (default "1k=100 4k=200 16k=500"; TINY every step); step 0
#              is always measured. KNN_MAX_TRAIN, KNN_MAX_VAL: the monitor's subsets (default 2000, 1000)
#   ABLATION_SEEDS, LEVER_SEEDS  seeds of the 4,000-step ablation and lever rows (default 0; e.g. 0,1)
#   LONG_SEEDS  more seeds of the official preset at 16,000 steps (default none; e.g. 1): seed 0 keeps its place,
#              these come after every other row, each with its random start
#   MAX_STEPS  run at most this many pending steps, then stop (default: all)
#   ONLY       run only the steps named here (space-separated words, each FOLDER/ROW, FOLDER/ROW/SEED or ROW, e.g.
#              "budget-4k/rotnet official_4k_no_repair budget-4k/official_4k/1"); the others are listed as skipped.
#              A word that names no step is refused, so a typo never runs nothing silently
#   DRY_RUN=1, REPORT_ONLY=1, TINY=1, COMMIT=1, ALLOW_OTHER_COMMIT=1: as above
#   CPUINFO    the file the CPU model is read from (default /proc/cpuinfo; the tests give another)
set -euo pipefail
if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then  # this header
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
  exit 0
fi
[ $# -eq 0 ] || { echo "budget_study.sh: no arguments (settings are environment variables; see --help)" >&2; exit 2; }
cd "$(dirname "$0")/.."
# spotart from this checkout's src/, whatever checkout the Python's editable install points at (a pinned worktree
# run with main's .venv would otherwise import main's code)
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python; fi
fi
TINY=${TINY:-}
DRY_RUN=${DRY_RUN:-}
if [ -n "$TINY" ]; then
  PRESET=tiny
  WORK_ROOT=${WORK_ROOT:-benchmarks/runs/budget-study-tiny}
  RESULTS=${RESULTS:-$WORK_ROOT/results}
  declare -A STEPS_OF=([1k]=2 [4k]=4 [16k]=8)
  default_knn="1k=1 4k=1 16k=1"
else
  PRESET=imagenette-64
  WORK_ROOT=${WORK_ROOT:-benchmarks/runs/budget-study}
  RESULTS=${RESULTS:-benchmarks/results/budget-study}
  declare -A STEPS_OF=([1k]=1000 [4k]=4000 [16k]=16000)
  default_knn="1k=100 4k=200 16k=500"
fi
declare -A KNN_EVERY_OF=()
for pair in ${KNN_EVERY:-$default_knn}; do KNN_EVERY_OF[${pair%%=*}]=${pair#*=}; done
for budget in 1k 4k 16k; do
  [[ ${KNN_EVERY_OF[$budget]:-} =~ ^[1-9][0-9]*$ ]] ||
    { echo "budget_study.sh: KNN_EVERY needs a step count for each budget, e.g. \"1k=100 4k=200 16k=500\"" >&2; exit 2; }
done
KNN_MAX_TRAIN=${KNN_MAX_TRAIN:-2000}
KNN_MAX_VAL=${KNN_MAX_VAL:-1000}
ABLATION_SEEDS=${ABLATION_SEEDS:-0}
LEVER_SEEDS=${LEVER_SEEDS:-0}
LONG_SEEDS=${LONG_SEEDS:-}
for seed in ${ABLATION_SEEDS//,/ } ${LEVER_SEEDS//,/ } ${LONG_SEEDS//,/ }; do
  [[ $seed =~ ^[0-9]+$ ]] ||
    { echo "budget_study.sh: seeds are whole numbers separated by commas, not '$seed'" >&2; exit 2; }
done
MAX_STEPS=${MAX_STEPS:-0}
[[ $MAX_STEPS =~ ^[0-9]+$ ]] || { echo "budget_study.sh: MAX_STEPS must be a whole number, not '$MAX_STEPS'" >&2; exit 2; }
read -r -a ONLY_WORDS <<<"${ONLY:-}"
CPUINFO=${CPUINFO:-/proc/cpuinfo}
AE_CONFIG=configs/official_stl10_ae.yaml
STAGE2_CONFIG=configs/official_stl10.yaml
CODE_PATHS=(src configs pyproject.toml)  # what the rows compute: a commit touching only other paths changes nothing

say() { echo "budget_study.sh: $*" >&2; }
refuse() { say "$*"; exit 2; }

# ------------------------------------------------------------------------------------------------ the rows
OFFICIAL="config=$STAGE2_CONFIG,precision=auto"
RANDOM_VARIANT="random_official:init=random,config=$STAGE2_CONFIG"
declare -A SWITCH_OF=(  # the 4,000-step rows beside official_4k: the paper's ablations, then our levers
  [official_4k_no_repair]=repair=none [official_4k_unmasked]=repair=unmasked [official_4k_twice]=passes=2
  [official_4k_no_mask_loss]=mask_loss_weight=0 [official_4k_mask_w1]=mask_loss_weight=1.0
  [official_4k_drop05]=drop_rate=0.5)
ABLATIONS=(official_4k_no_repair official_4k_unmasked official_4k_twice official_4k_no_mask_loss)
LEVERS=(official_4k_mask_w1 official_4k_drop05)

variant_of() {  # the --variant definition of a stage-2 row of budget $2
  local row=$1 budget=$2 extra=${SWITCH_OF[$1]:-}
  echo "$row:$OFFICIAL,steps=${STEPS_OF[$budget]}${extra:+,$extra}"
}

STEPS=()  # "folder|row|seed|kind", in priority order
add() { STEPS+=("$1|$2|$3|$4"); }
add stage1 autoencoder 0 stage1
for budget in 1k 4k; do for seed in 0 1; do add "budget-$budget" "official_$budget" "$seed" spot; done; done
add budget-16k official_16k 0 spot
for budget in 1k 4k; do for seed in 0 1; do add "budget-$budget" rotnet "$seed" rotnet; done; done
add budget-16k rotnet 0 rotnet
for seed in 0 1; do add budget-4k rotnet_equal_time "$seed" rotnet_time; done
for budget in 1k 4k; do for seed in 0 1; do add "budget-$budget" random_official "$seed" random; done; done
add budget-16k random_official 0 random
for seed in ${ABLATION_SEEDS//,/ }; do for row in "${ABLATIONS[@]}"; do add budget-4k "$row" "$seed" spot; done; done
for seed in ${LEVER_SEEDS//,/ }; do for row in "${LEVERS[@]}"; do add budget-4k "$row" "$seed" spot; done; done
for seed in ${LONG_SEEDS//,/ }; do
  [ "$seed" = 0 ] || { add budget-16k official_16k "$seed" spot; add budget-16k random_official "$seed" random; }
done

chosen() {  # FOLDER ROW SEED: whether ONLY (when set) names this step
  [ "${#ONLY_WORDS[@]}" -eq 0 ] && return 0
  local word
  for word in "${ONLY_WORDS[@]}"; do
    [[ $word == "$1/$2" || $word == "$1/$2/$3" || $word == "$2" ]] && return 0
  done
  return 1
}
for word in "${ONLY_WORDS[@]}"; do  # every word must name a step: a typo must not quietly run nothing
  named=""
  for step in "${STEPS[@]}"; do
    IFS='|' read -r folder row seed kind <<<"$step"
    [[ $word == "$folder/$row" || $word == "$folder/$row/$seed" || $word == "$row" ]] && { named=1; break; }
  done
  [ -n "$named" ] || { echo "budget_study.sh: ONLY names no step: '$word' (words are FOLDER/ROW, FOLDER/ROW/SEED or ROW; DRY_RUN=1 lists the steps)" >&2; exit 2; }
done

# ------------------------------------------------------------------------------------------- stage 1's keys
# every key of configs/official_stl10_ae.yaml but those the preset sets (data, size, batch, steps), as --ae-set
mapfile -t AE_PAIRS < <("$PY" - "$AE_CONFIG" <<'EOF'
import sys
import yaml

PRESET_KEYS = {"data", "stl10_split", "image_size", "batch_size", "steps"}


def setting(value):
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(setting(item) for item in value)
    return str(value)


for key, value in yaml.safe_load(open(sys.argv[1])).items():
    if key not in PRESET_KEYS:
        print(f"{key}={setting(value)}")
EOF
)
[ "${#AE_PAIRS[@]}" -gt 0 ] || refuse "could not read the stage-1 keys of $AE_CONFIG with $PY (PyYAML)"
AE_SET=()
for pair in "${AE_PAIRS[@]}"; do AE_SET+=(--ae-set "$pair"); done

# --------------------------------------------------------------------------------------- commit and machine
cpu_model() {  # "model name [amx_bf16 avx512_bf16]": what decides the speed and what precision=auto computes in
  local name flags found=""
  name=$(grep -m1 '^model name' "$CPUINFO" 2>/dev/null | sed 's/^[^:]*:[[:space:]]*//') || true
  flags=" $(grep -m1 '^flags' "$CPUINFO" 2>/dev/null | sed 's/^[^:]*://') " || true
  for flag in amx_bf16 avx512_bf16; do [[ $flags == *" $flag "* ]] && found+=" $flag"; done
  if [ -n "$found" ]; then found=${found# }; else found="no bf16 flags"; fi
  echo "${name:-$(uname -m)} [$found]"
}
CPU=$(cpu_model)
HEAD=$(git rev-parse HEAD)

record() {  # FILE LINE [quiet]: append, unless DRY_RUN (which says what it would record, unless quiet)
  if [ -z "$DRY_RUN" ]; then mkdir -p "$(dirname "$1")"; echo "$2" >>"$1"
  elif [ -z "${3:-}" ]; then echo "# would record in $1: $2"; fi
}

if [ -f "$WORK_ROOT/commit" ]; then
  PINNED=$(head -n1 "$WORK_ROOT/commit")
  if [ "$PINNED" != "$HEAD" ]; then
    other=""
    if ! git cat-file -e "$PINNED^{commit}" 2>/dev/null; then
      other="the study in $WORK_ROOT is pinned to $PINNED, which is not a commit of this repository"
    elif ! git diff --quiet "$PINNED" "$HEAD" -- "${CODE_PATHS[@]}"; then
      other="the study in $WORK_ROOT is pinned to ${PINNED:0:12} and this checkout ($(git rev-parse --short=12 HEAD)) differs from it in ${CODE_PATHS[*]}"
    fi
    if [ -z "$other" ]; then
      echo "# HEAD $(git rev-parse --short=12 HEAD) differs from the pinned ${PINNED:0:12} only outside ${CODE_PATHS[*]}"
    elif [ -n "${ALLOW_OTHER_COMMIT:-}" ]; then
      echo "# ALLOW_OTHER_COMMIT=1: going on although $other"
    else
      refuse "$other; run from a checkout of it (git worktree add ../spotart-budget ${PINNED:0:12}) or set ALLOW_OTHER_COMMIT=1"
    fi
  fi
else
  PINNED=$HEAD
  record "$WORK_ROOT/commit" "$HEAD"
  record "$WORK_ROOT/cpu" "$CPU"
fi
if [ -n "$(git status --porcelain -- "${CODE_PATHS[@]}")" ] && [ -z "${ALLOW_OTHER_COMMIT:-}" ]; then
  if [ -n "$DRY_RUN" ]; then
    echo "# warning: uncommitted changes in ${CODE_PATHS[*]}: a real run would refuse them"
  else
    refuse "uncommitted changes in ${CODE_PATHS[*]} (git status): the rows must run the pinned commit's code; commit or set them aside, or set ALLOW_OTHER_COMMIT=1"
  fi
fi
[[ $CPU == *"no bf16 flags"* ]] && echo "# warning: this CPU has neither amx_bf16 nor avx512_bf16: precision=auto trains in fp32 here"

cpu_of() {  # the CPU a row started on, empty when it has not started
  [ -f "$WORK_ROOT/cpus.tsv" ] || return 0
  awk -F'\t' -v key="$1" '$1 == key { print $2; exit }' "$WORK_ROOT/cpus.tsv"
}

# ------------------------------------------------------------------------------------------------ the steps
run_folder() { if [ "$2" = 0 ]; then echo "$1"; else echo "$1-seed$2"; fi; }
probed() { [ -f "$WORK_ROOT/$1/$(run_folder "$2" "$3")/probe/probe.json" ]; }

models_of() {  # the rows one step trains or probes: the row, then the random network it starts from
  case $1 in
    stage1) echo autoencoder ;;
    random) echo random_official ;;
    *) echo "$2,random_official" ;;
  esac
}

show() {  # the command as one could paste it: words quoted only where the shell needs it
  local word line="+"
  for word in "$@"; do
    if [[ $word =~ ^[A-Za-z0-9_./=:,@%+-]+$ ]]; then line+=" $word"; else line+=" '${word//\'/\'\\\'\'}'"; fi
  done
  echo "$line"
}
run() { show "$@"; [ -n "$DRY_RUN" ] || "$@"; }

reproduce_step() {  # FOLDER ROW SEED KIND
  local folder=$1 row=$2 seed=$3 kind=$4 work=$WORK_ROOT/$1
  local args=(--preset "$PRESET" --work "$work" --results "$RESULTS/$folder")
  if [ "$kind" != stage1 ]; then  # stage 1 is the linked, finished one: no --ae-set needed
    local budget=${folder#budget-}
    local reference=official_$budget val=../shared/data/imagenette-96/val
    [ -n "$TINY" ] && val=$work/data/val  # the tiny preset writes its toy images into each work folder
    args+=(--set "knn_val=$val" --set "knn_every=${KNN_EVERY_OF[$budget]}" --set "knn_max_train=$KNN_MAX_TRAIN"
           --set "knn_max_val=$KNN_MAX_VAL" --variant "$(variant_of "$reference" "$budget")"
           --variant "$RANDOM_VARIANT")
    [ "$kind" = spot ] && [ "$row" != "$reference" ] && args+=(--variant "$(variant_of "$row" "$budget")")
    args+=(--models "$(models_of "$kind" "$row")" --seeds "$seed" --equal-time-to "$reference")
  else
    args+=("${AE_SET[@]}" --models autoencoder --seeds "$seed")
  fi
  run "$PY" -m spotart reproduce "${args[@]}"
}

declare -A LINKED=()
link_stage1() {  # a budget folder's `autoencoder` is stage 1's: the one shared stage 1 of every row
  local link=$WORK_ROOT/$1/autoencoder
  if [ -L "$link" ] || [ -n "${LINKED[$1]:-}" ]; then return 0; fi
  LINKED[$1]=1
  [ -e "$link" ] && refuse "$link is a stage 1 of its own, not a link to $WORK_ROOT/stage1/autoencoder: move it away"
  if [ -z "$DRY_RUN" ] && [ ! -f "$WORK_ROOT/stage1/autoencoder/run/trained.json" ]; then
    refuse "stage 1 ($WORK_ROOT/stage1/autoencoder) is not finished: run the stage1 step first"
  fi
  run mkdir -p "$WORK_ROOT/$1"
  run ln -s ../stage1/autoencoder "$link"
}

report() {  # STEP: the tables and charts from what is done, then the line that commits them
  if ! run "$PY" benchmarks/budget_report.py --work-root "$WORK_ROOT" --results "$RESULTS"; then
    say "the report failed (the step itself is done): fix it and run REPORT_ONLY=1 bash benchmarks/budget_study.sh"
    return 0
  fi
  [ -n "$TINY" ] && return 0
  local message="budget study (issue 24): $1 done, pinned at ${PINNED:0:12}"
  if [ -n "${COMMIT:-}" ]; then
    run git add "$RESULTS"
    if [ -z "$DRY_RUN" ] && git diff --cached --quiet -- "$RESULTS"; then
      echo "# nothing new to commit in $RESULTS"
    else
      run git commit -m "$message" -- "$RESULTS"
    fi
  else
    echo "# to commit the tables: git add $RESULTS && git commit -m '$message' -- $RESULTS"
  fi
}

# one study job at a time on a work root (the rows' times are only comparable on an otherwise idle machine)
if [ -z "$DRY_RUN" ] && command -v flock >/dev/null; then
  mkdir -p "$WORK_ROOT"
  exec 9>"$WORK_ROOT/.lock"
  flock -n 9 || refuse "another budget_study.sh is running on $WORK_ROOT"
fi

if [ -n "${REPORT_ONLY:-}" ]; then
  report "tables rewritten"
  exit 0
fi

ran=0 total=${#STEPS[@]} index=0
for step in "${STEPS[@]}"; do
  IFS='|' read -r folder row seed kind <<<"$step"
  index=$((index + 1))
  IFS=',' read -r -a models <<<"$(models_of "$kind" "$row")"
  pending=() state=done
  for model in "${models[@]}"; do probed "$folder" "$model" "$seed" || pending+=("$model"); done
  if [ "${#pending[@]}" -gt 0 ]; then
    state=pending
    [ -d "$WORK_ROOT/$folder/$(run_folder "$row" "$seed")/run" ] && state="started: resumes from its latest.pt"
  fi
  if ! chosen "$folder" "$row" "$seed"; then
    echo "# step $index/$total: $folder $row seed $seed ($state; not in ONLY: skipped)"
    continue
  fi
  echo "# step $index/$total: $folder $row seed $seed ($state)"
  [ "$state" = done ] && continue
  if [ "$MAX_STEPS" -gt 0 ] && [ "$ran" -ge "$MAX_STEPS" ]; then
    echo "# MAX_STEPS=$MAX_STEPS reached: the steps from here on are left for the next start"
    break
  fi
  # a row's seeds (and its resumes) on one CPU model; RotNet at equal time on its reference's and stage 1's
  for model in "${pending[@]}"; do
    recorded=$(cpu_of "$folder/$model")
    [ -z "$recorded" ] || [ "$recorded" = "$CPU" ] ||
      refuse "$folder/$model started on '$recorded'; this machine is '$CPU': a row's seeds never mix machines"
  done
  if [ "$kind" = rotnet_time ]; then
    for key in "stage1/autoencoder" "$folder/official_${folder#budget-}"; do
      recorded=$(cpu_of "$key")
      [ -z "$recorded" ] || [ "$recorded" = "$CPU" ] ||
        refuse "$folder/$row's time budget was measured on '$recorded' ($key); this machine is '$CPU'"
    done
  fi
  for model in "${pending[@]}"; do
    [ -n "$(cpu_of "$folder/$model")" ] || record "$WORK_ROOT/cpus.tsv" "$folder/$model	$CPU" quiet
  done
  record "$WORK_ROOT/steps.log" "$(date -u +%FT%TZ)	$folder $row seed $seed	$HEAD	$CPU" quiet
  [ "$folder" = stage1 ] || link_stage1 "$folder"
  reproduce_step "$folder" "$row" "$seed" "$kind"
  ran=$((ran + 1))
  report "$folder $row seed $seed"
done
echo "# $ran step(s) run$([ -n "$DRY_RUN" ] && echo ' (dry run: nothing was run)')"
