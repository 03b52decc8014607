#!/usr/bin/env bash
# The LLM-TOPLA study on generated questions: two question sets (GSM8K and MMLU formats, known
# answers, fixed seeds), SmolLM2-135M-Instruct's sampled answers in each configuration of
# members.tsv, the answer pools, and the combiners on the team of all members and on the most
# focal-diverse team. The questions are generated; the answers are the model's own.
#
#   examples/llm-study/run.sh [OUT] [QUESTIONS] [SAMPLES]
#
# Answer sets resume, so an interrupted run picks up where it stopped.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-llm-study}"
count="${2:-150}"
samples="${3:-5}"
fuselab="${FUSELAB_BIN:-fuselab}"
mkdir -p "$out"
started=$(date +%s)
for task in gsm8k mmlu; do
  seed=$([ "$task" = gsm8k ] && echo 11 || echo 12)
  "$fuselab" llm questions --task "$task" --count "$count" --seed "$seed" --out "$out/$task.questions.jsonl"
  grep -v '^#' "$here/members.tsv" | while IFS=$'\t' read -r variant prompt temperature gsm_tokens mmlu_tokens; do
    tokens=$([ "$task" = gsm8k ] && echo "$gsm_tokens" || echo "$mmlu_tokens")
    "$fuselab" llm answers --model smollm2 --questions "$out/$task.questions.jsonl" --task "$task" \
      --variant "$variant" --prompt "$prompt" --temperature "$temperature" --samples "$samples" \
      --max-new-tokens "$tokens" --out "$out/$task.answers/$variant.jsonl"
  done
done
echo "answers generated in $(( $(date +%s) - started )) s" >&2
for task in gsm8k mmlu; do
  answers=(--answers "$out/$task.answers" --gold "$out/$task.questions.jsonl" --task "$task")
  "$fuselab" llm topla pool "${answers[@]}" --out "$out/$task.pool.json"
  team=$(grep -v '^#' "$here/members.tsv" | cut -f1 | paste -sd, -)
  best=$("$fuselab" ensemble combine "$out/$task.pool.json" --top-k 1 --method weighted-vote --format json \
    | python3 -c 'import json,sys; print(",".join(json.load(sys.stdin)["teams"][0]["names"]))')
  for t in "$team" "$best"; do
    name=$(echo "$t" | tr ',' '+')
    for method in stacking mlp; do
      "$fuselab" ensemble combine "$out/$task.pool.json" --team "$t" --method "$method" \
        --format json --out "$out/$task.$name.$method.json"
    done
    "$fuselab" llm topla weighted "${answers[@]}" --team "$t" --format json \
      --out "$out/$task.$name.topla-weighted.json"
  done
done
python3 "$here/table.py" "$out"
echo "study done in $(( $(date +%s) - started )) s" >&2
