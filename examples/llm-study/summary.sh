#!/usr/bin/env bash
# LLM-TOPLA-Summary on the LLM study's answers (run.sh first): for each task, the fusion model
# trained and evaluated by generation, then the same with --compat llm-topla (pads in the loss,
# the last epoch kept, the teacher-forced score beside the generated one). Each run resumes
# when interrupted.
#
#   examples/llm-study/summary.sh [OUT]        # OUT: run.sh's output folder (default llm-study)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(cd "${1:-llm-study}" && pwd)"
fuselab="${FUSELAB_BIN:-fuselab}"
started=$(date +%s)
for task in gsm8k mmlu; do
  for compat in "" llm-topla; do
    suffix=${compat:+-compat}
    config="$out/summary-$task$suffix.toml"
    # The example configuration with this study's folders.
    sed -e "s#\"../../llm-study/summary-$task\"#\"$out/summary-$task$suffix\"#" \
        -e "s#\"../../llm-study/#\"$out/#g" "$here/summary-$task.toml" > "$config"
    "$fuselab" llm topla summary --config "$config" ${compat:+--compat "$compat"} \
      > "$out/summary-$task$suffix.md"
    echo "$task${compat:+ ($compat)} done after $(( $(date +%s) - started )) s" >&2
  done
done
python3 "$here/summary_table.py" "$out"
