#!/usr/bin/env bash
# Method B beyond SIB-200, offline on SmolLM2-135M: task modules trained in English on NusaX (sentiment),
# MasakhaNER (NER as "PER: X$$LOC: Y") and XQuAD (answers generated from question + context windows),
# evaluated with each target's language module swapped in, or the nearest language's borrowed.
# Targets without a module borrow the nearest language's (genetic for NusaX, syntactic elsewhere).
# Reuses the language modules of examples/method_b.sh (run it first). Results: docs/tasks.md.
#
#   bash examples/tasks_smollm2.sh        # DATA=../shared/data MODULES=runs/method_b/modules OUT=runs/tasks
#
# Every command resumes: rerun the script after an interruption and finished work is skipped.
set -euo pipefail
DATA=${DATA:-../shared/data}
MODULES=${MODULES:-runs/method_b/modules}
OUT=${OUT:-runs/tasks}
SEED=${SEED:-0}
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000   # docs/speed.md: glibc malloc on CPU
COMMON=(--model smollm2-135m --modules-dir "$MODULES" --placement prefix --seed "$SEED" --precision bf16
        --data-dir "$DATA" --quiet)
EVAL=(--precision bf16 --batch-size 16 --data-dir "$DATA" --quiet)
lr() { case $1 in *ta) echo 1e-3 ;; *) echo 1e-2 ;; esac; }   # adapters want a smaller rate than prompts

# NusaX: English -> 11 languages of Indonesia (only ind has a module of its own: the others borrow)
for conf in ta tp la+ta slp+ta; do
  xlpeft train --task nusax --configuration "$conf" --prompt-length 10 --shots 32 --epochs 5 --lr "$(lr $conf)" \
    --batch-size 8 --max-length 128 --out "$OUT/nusax/$conf-s$SEED" "${COMMON[@]}"
done
# Austronesian targets borrow by genetic distance (Indonesian's module); syntactic distance would pick Yoruba
xlpeft evaluate "$OUT"/nusax/*-s"$SEED" --languages all --borrow genetic --out "$OUT/nusax_s$SEED.csv" "${EVAL[@]}"

# MasakhaNER: English CoNLL-03 -> Yoruba and Swahili (own modules), Hausa (borrows)
for conf in ta slp+ta; do
  xlpeft train --task masakhaner --configuration "$conf" --shots 128 --epochs 5 --lr "$(lr $conf)" \
    --batch-size 8 --max-length 128 --out "$OUT/masakhaner/$conf-s$SEED" "${COMMON[@]}"
done
xlpeft evaluate "$OUT"/masakhaner/*-s"$SEED" --languages eng,yor,swa,hau --out "$OUT/masakhaner_s$SEED.csv" \
  --borrow syntactic "${EVAL[@]}"

# XQuAD offline: English questions of 20 articles train, 24 held-out articles are evaluated in every language
for conf in ta la+ta; do
  xlpeft train --task xquad --configuration "$conf" --shots 256 --epochs 3 --lr "$(lr $conf)" \
    --batch-size 8 --max-length 256 --out "$OUT/xquad/$conf-s$SEED" "${COMMON[@]}"
done
xlpeft evaluate "$OUT"/xquad/*-s"$SEED" --languages en,de,es --out "$OUT/xquad_s$SEED.csv" --borrow syntactic \
  "${EVAL[@]}"
