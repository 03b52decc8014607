"""The Jupyter view of an analysis: the top-K table and a scatter plot (SVG) of focal
diversity against plurality accuracy for the described teams."""

from html import escape


def _number(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def _scatter(report: dict) -> str:
    width, height, pad = 360, 220, 36
    points = [
        (t["focal_diversity"], t["plurality_accuracy"], t["members"])
        for t in report["teams"]
        if t["focal_diversity"] is not None
    ]
    names = [m["name"] for m in report["models"]]
    if not points:
        return ""
    ys = [p[1] for p in points]
    low, high = min(ys), max(ys)
    span = (high - low) or 1.0

    def x(v):
        return pad + (width - 2 * pad) * v

    def y(v):
        return height - pad - (height - 2 * pad) * (v - low) / span

    dots = "".join(
        f'<circle cx="{x(f):.1f}" cy="{y(a):.1f}" r="3.5" fill="#3465a4">'
        f"<title>{escape('+'.join(names[m] for m in members))}: focal {f:.4f}, plurality {a:.4f}</title></circle>"
        for f, a, members in points
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="Focal diversity against plurality accuracy">'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>'
        f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle" font-size="11">focal diversity</text>'
        f'<text x="10" y="{pad - 10}" font-size="11">plurality accuracy ({low:.3f}–{high:.3f})</text>'
        f"{dots}</svg>"
    )


def report_html(report: dict) -> str:
    names = [m["name"] for m in report["models"]]
    rows = "".join(
        "<tr>"
        f"<td>{escape(' + '.join(names[m] for m in t['members']))}</td>"
        f"<td>{len(t['members'])}</td>"
        f"<td>{_number(t['focal_diversity'])}</td>"
        f"<td>{_number(t['plurality_accuracy'])}</td>"
        f"<td>{_number(t['majority_accuracy'])}</td>"
        f"<td>{_number(t['soft_vote_accuracy'])}</td>"
        "</tr>"
        for t in report["teams"]
    )
    return (
        f"<p><b>fuselab</b>: {report['n_models']} models, {report['n_samples']} samples, "
        f"{report['n_classes']} classes</p>"
        "<table><thead><tr><th>members</th><th>size</th><th>focal diversity</th>"
        "<th>plurality</th><th>majority</th><th>soft vote</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>{_scatter(report)}"
    )
