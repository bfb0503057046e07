"""The eval report as text: a terminal summary, and a Markdown report with one PNG per metric.

`write_report(report_dict, folder)` writes `folder/README.md` (tables: overall, by kind,
per question, then every statement with its verdicts) and `folder/<metric>.png`: a bar per
question kind, drawn with matplotlib's headless Agg backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .questions import KINDS
from .suite import metric_at

# (path in a summary dict, label, file name)
METRICS: tuple[tuple[str, str, str], ...] = (
    ("retrieval.recall@5", "Retrieval recall@5", "recall_at_5"),
    ("retrieval.recall@10", "Retrieval recall@10", "recall_at_10"),
    ("retrieval.mrr", "Retrieval MRR", "mrr"),
    ("citations.precision", "Citation precision", "citation_precision"),
    ("citations.recall", "Citation recall", "citation_recall"),
    ("facts.accuracy", "Fact accuracy", "fact_accuracy"),
    ("abstention.accuracy", "Abstention accuracy", "abstention_accuracy"),
    ("faithfulness", "Faithfulness (deterministic)", "faithfulness"),
    ("faithfulness_judge", "Faithfulness (LLM judge)", "faithfulness_judge"),
)
SHORT = ("R@5", "R@10", "MRR", "cit.P", "cit.R", "fact", "abstain", "faithful", "judge")


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _cell(text: Any) -> str:
    return fmt(text).replace("|", "\\|").replace("\n", " ")


def summary_lines(report: dict) -> list[str]:
    """Plain lines for the terminal: overall metrics, then one line per kind."""
    lines = [f"{report['questions']} questions ({report.get('meta', {}).get('mode', '?')}, "
             f"{report.get('meta', {}).get('seconds', 0)} s)"]
    for path, label, _ in METRICS:
        lines.append(f"  {label:<30} {fmt(metric_at(report, path))}")
    lines.append("")
    header = f"  {'kind':<11}{'n':>4}" + "".join(f"{name:>9}" for name in SHORT)
    lines.append(header)
    for kind, summary in report.get("by_kind", {}).items():
        lines.append(f"  {kind:<11}{summary['questions']:>4}"
                     + "".join(f"{fmt(metric_at(summary, p)):>9}" for p, _, _ in METRICS))
    return lines


def _chart(report: dict, path: str, label: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in KINDS if k in report.get("by_kind", {})]
    values = [metric_at(report["by_kind"][k], path) for k in kinds]
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    bars = ax.bar(kinds, [v if v is not None else 0 for v in values], color="#4C72B0")
    overall = metric_at(report, path)
    if overall is not None:
        ax.axhline(overall, color="#C44E52", linestyle="--", linewidth=1,
                   label=f"overall {overall:.2f}")
        ax.legend(loc="upper left", fontsize=8, ncol=1, frameon=False)
    for bar, v in zip(bars, values):
        ax.text(bar.get_x() + bar.get_width() / 2, (v or 0) + 0.02, "n/a" if v is None else fmt(v),
                ha="center", fontsize=8)
    ax.set_ylim(0, 1.25)
    ax.set_title(f"{label} by question kind")
    ax.set_ylabel(label)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def markdown(report: dict, charts: dict[str, str]) -> str:
    meta = report.get("meta", {})
    out = ["# Eval report", "",
           f"{report['questions']} questions, model `{meta.get('model', '?')}`, "
           f"{meta.get('mode', '?')} mode, {meta.get('seconds', '?')} s. Deterministic "
           f"faithfulness threshold: similarity >= {meta.get('similarity_threshold', '?')}.", "",
           "## Overall", "", "| metric | value |", "|---|---|"]
    for path, label, _ in METRICS:
        out.append(f"| {label} | {fmt(metric_at(report, path))} |")
    st = report.get("statements", {})
    out += ["", f"Statements: {st.get('supported', 0)} of {st.get('total', 0)} supported "
            f"(deterministic); judge: {st.get('judge_supported', 0)} of {st.get('judge_total', 0)}.",
            "", "## By kind", "",
            "| kind | n | " + " | ".join(label for _, label, _ in METRICS) + " |",
            "|---|---|" + "---|" * len(METRICS)]
    for kind, summary in report.get("by_kind", {}).items():
        out.append(f"| {kind} | {summary['questions']} | "
                   + " | ".join(fmt(metric_at(summary, p)) for p, _, _ in METRICS) + " |")
    out += ["", "## Charts", ""]
    for path, label, name in METRICS:
        if name in charts:
            out.append(f"![{label}]({charts[name]})")
    out += ["", "## Questions", "",
            "| id | kind | R@5 | R@10 | RR | cit. P | cit. R | fact | abst. ok | faithful | judge |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report.get("results", []):
        out.append(" | ".join([
            f"| {r['id']}", r["kind"], fmt(r["recall_at_5"]), fmt(r["recall_at_10"]),
            fmt(r["reciprocal_rank"]), fmt(r["citation_precision"]), fmt(r["citation_recall"]),
            fmt(r["fact_correct"]), fmt(r["abstention_correct"]), fmt(r["faithfulness"]),
            fmt(r["faithfulness_judge"]) + " |"]))
    out += ["", "## Details", ""]
    for r in report.get("results", []):
        out += [f"### {r['id']} ({r['kind']})", ""]
        for turn in r.get("history", []):
            out.append(f"> earlier: {turn}")
        out += [f"**Q:** {r['question']}", ""]
        if r.get("query") and r["query"] != r["question"]:
            out += [f"Search query: `{r['query']}`", ""]
        out += ["**Answer:**", "", *[f"> {line}" for line in r["answer"].splitlines()], ""]
        if r.get("gold"):
            out.append("Gold: " + "; ".join(r["gold"]))
        if r.get("expected"):
            out.append("Expected value: " + " / ".join(r["expected"]))
        out.append("Cited: " + ("; ".join(r["cited"]) or "–"))
        out.append("Retrieved (top 10): " + "; ".join(
            f"**{t}**" if t in r.get("gold", []) else t for t in r["retrieved"]))
        out.append("")
        if r["statements"]:
            out += ["| statement | cites | deterministic | similarity | why |", "|---|---|---|---|---|"]
            for s in r["statements"]:
                out.append(f"| {_cell(s['text'])} | {_cell(','.join(map(str, s['cites'])))} | "
                           f"{fmt(s['supported'])} | {s['similarity']:.2f} | {_cell(s['reason'])} |")
            out.append("")
        if r["judge_statements"]:
            out += ["| judge statement | cites | judge |", "|---|---|---|"]
            for s in r["judge_statements"]:
                out.append(f"| {_cell(s['text'])} | {_cell(','.join(map(str, s['cites'])))} | "
                           f"{fmt(s['supported'])} |")
            out.append("")
    return "\n".join(out) + "\n"


def write_report(report: dict, folder: Path) -> Path:
    """Write README.md and one PNG per metric into `folder`; return the Markdown file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    charts: dict[str, str] = {}
    for path, label, name in METRICS:
        if report.get("by_kind"):
            _chart(report, path, label, folder / f"{name}.png")
            charts[name] = f"{name}.png"
    md = folder / "README.md"
    md.write_text(markdown(report, charts), encoding="utf-8")
    return md
