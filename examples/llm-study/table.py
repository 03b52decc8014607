"""Prints the LLM study's table from the reports run.sh wrote: per question set and team, the
test accuracy (with its 95 % interval) of each member, the votes, stacking, the mlp and
LLM-TOPLA-Weighted, and the team's focal diversity on val. Writes OUT/table.md too."""

import glob
import json
import os
import sys


def accuracy(scores):
    low, high = scores["interval"]
    return f"{scores['accuracy']:.3f} [{low:.2f}, {high:.2f}]"


def main(out):
    lines = []
    for task in ("gsm8k", "mmlu"):
        for weighted_path in sorted(glob.glob(os.path.join(out, f"{task}.*.topla-weighted.json"))):
            team_name = os.path.basename(weighted_path)[len(task) + 1 : -len(".topla-weighted.json")]
            reports = {}
            for method in ("stacking", "mlp", "topla-weighted"):
                with open(os.path.join(out, f"{task}.{team_name}.{method}.json")) as f:
                    reports[method] = json.load(f)["teams"][0]
            weighted = reports["topla-weighted"]
            focal = weighted.get("focal_diversity")
            test = reports["mlp"]["combined"]["samples"]
            lines.append(
                f"\n### {task}: team {' + '.join(weighted['names'])} "
                f"(focal diversity on val {focal:.3f}; {test} test questions)\n"
            )
            lines.append("| | test accuracy [95 % interval] |")
            lines.append("|---|---|")
            for baseline in reports["mlp"]["baselines"]:
                if baseline["name"] != "majority":
                    kind = "member " if baseline["member"] else ""
                    lines.append(f"| {kind}{baseline['name']} | {accuracy(baseline['scores'])} |")
            for method in ("stacking", "mlp", "topla-weighted"):
                lines.append(f"| {method} | {accuracy(reports[method]['combined'])} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "llm-study")
