#!/usr/bin/env bash
# Method B (Vykopal et al. 2025) offline: language modules for SIB-200 languages from the shared raw text,
# task modules on English SIB-200, all seven configurations evaluated on those languages plus two that
# borrow the nearest language's module. Results: docs/method_b.md.
#
#   bash examples/method_b.sh            # SmolLM2-135M, eight languages; DATA=../shared/data OUT=runs/method_b
#   MODEL=gemma-3-270m LANGS="eng_Latn deu_Latn swh_Latn" BORROWERS="nld_Latn hau_Latn" OUT=runs/method_b_gemma \
#     bash examples/method_b.sh          # the reduced Gemma study of docs/method_b.md
#
# Every command resumes: rerun the script after an interruption and finished work is skipped.
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/method_b}
SEED=${SEED:-0}
MODEL=${MODEL:-smollm2-135m}
MODULES=$OUT/modules
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000   # docs/speed.md: glibc malloc on CPU

# raw text per language: the largest shared corpus that is not SIB-200 itself; English has only the
# UDHR there, so it learns from SIB-200's unlabeled train split (disjoint from the test set)
declare -A TEXT=([eng_Latn]=sib200-train [deu_Latn]=tatoeba [fra_Latn]=tatoeba [spa_Latn]=tatoeba
                 [ind_Latn]=ud [fin_Latn]=ud [swh_Latn]=lafand [yor_Latn]=lafand)
LANGS=${LANGS:-"eng_Latn deu_Latn fra_Latn spa_Latn ind_Latn fin_Latn swh_Latn yor_Latn"}
BORROWERS=${BORROWERS:-"nld_Latn hau_Latn"}   # no module of their own: borrow the nearest by syntax

for kind in la slp; do
  for lang in $LANGS; do
    xlpeft language-module train --model "$MODEL" --language "$lang" --kind "$kind" --text "${TEXT[$lang]}" \
      --steps 100 --batch-size 8 --block-length 64 --eval-every 25 --validation-lines 64 --prompt-length 20 \
      --seed "$SEED" --precision bf16 --data-dir "$DATA" --modules-dir "$MODULES" --quiet
  done
done

for conf in zero-shot ta tp la+ta la+tp slp+ta slp+tp; do
  case $conf in *ta) lr=1e-3 ;; *) lr=1e-2 ;; esac   # adapters want a smaller rate than prompts
  xlpeft train --model "$MODEL" --configuration "$conf" --modules-dir "$MODULES" --placement prefix \
    --prompt-length 10 --shots 32 --epochs 5 --lr "$lr" --batch-size 8 --max-length 96 --seed "$SEED" \
    --precision bf16 --data-dir "$DATA" --out "$OUT/runs/$conf-s$SEED" --quiet
done

xlpeft evaluate "$OUT"/runs/*-s"$SEED" --languages "$(echo $LANGS $BORROWERS | tr ' ' ,)" --borrow syntactic \
  --precision bf16 --batch-size 16 --data-dir "$DATA" --out "$OUT/results_s$SEED.csv" --quiet

# control: the same stacked runs with the English module kept for every target (no swap)
mkdir -p "$OUT/modules_eng_only/$MODEL"
ln -sfn "$(cd "$MODULES/$MODEL/eng_Latn" && pwd)" "$OUT/modules_eng_only/$MODEL/eng_Latn"
xlpeft evaluate "$OUT"/runs/{la+ta,la+tp,slp+ta,slp+tp}-s"$SEED" \
  --languages "$(echo $LANGS $BORROWERS | tr ' ' , | sed 's/eng_Latn,//')" \
  --modules-dir "$OUT/modules_eng_only" --borrow syntactic --precision bf16 --batch-size 16 --data-dir "$DATA" \
  --out "$OUT/results_source_module_s$SEED.csv" --quiet --no-plot
