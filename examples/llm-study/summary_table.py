"""The LLM-TOPLA-Summary study's table: per task, every method's test accuracy, the fused model's
generated answers and (from the --compat llm-topla run) its teacher-forced score side by side.

    python3 examples/llm-study/summary_table.py llm-study
"""
import json
import sys
from pathlib import Path


def main(out: Path) -> None:
    print("| task | method | accuracy % (fuselab run) | accuracy % (--compat llm-topla run) |")
    print("|---|---|---:|---:|")
    for task in ("gsm8k", "mmlu"):
        runs = {}
        for name in ("", "-compat"):
            path = out / f"summary-{task}{name}" / "report.json"
            if path.is_file():
                runs[name] = json.loads(path.read_text())
        if not runs:
            continue
        names = []
        for report in runs.values():
            for row in report["rows"]:
                if row["name"] not in names:
                    names.append(row["name"])
        for name in names:
            cells = []
            for run in ("", "-compat"):
                rows = {r["name"]: r for r in runs.get(run, {}).get("rows", [])}
                row = rows.get(name)
                cells.append("–" if row is None else f"{100 * row['scores']['correct']:.1f}")
            print(f"| {task} | {name} | {cells[0]} | {cells[1]} |")
        for run, report in runs.items():
            t = report["training"]
            print(
                f"\n{task}{run or ''}: kept epoch {report['kept_epoch']} of {len(report['history'])}, "
                f"{t['tokens_per_second']:.0f} tokens/s, {t['seconds']:.0f} s, focal diversity "
                f"{report['focal_diversity'] if report['focal_diversity'] is None else round(report['focal_diversity'], 3)}",
                file=sys.stderr,
            )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "llm-study"))
