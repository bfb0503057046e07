"""The eval report as text: a terminal summary, and a Markdown report with one PNG per metric.

`write_report(report_dict, folder)` writes `folder/README.md` (tables: overall, by kind,
per question, then every statement with its verdicts) and `folder/<metric>.png`: a bar per
question kind, drawn with matplotlib's headless Agg backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .questions import KINDS
from .thresholds import metric_at

# (path in a summary dict, label, file name)
METRICS: tuple[tuple[str, str, str], ...] = (
    ("headline", "Headline: answered correctly", "headline"),
    ("key_recall", "Key recall (states the key)", "key_recall"),
    ("echo_rate", "Echo rate (statements)", "echo_rate"),
    ("extra_citation_rate", "Extra citations (1 paper)", "extra_citation_rate"),
    ("list_recall", "List recall (which papers)", "list_recall"),
    ("substantive", "Substantive answers", "substantive"),
    ("retrieval.recall@5", "Retrieval recall@5", "recall_at_5"),
    ("retrieval.recall@10", "Retrieval recall@10", "recall_at_10"),
    ("retrieval.mrr", "Retrieval MRR", "mrr"),
    ("citations.precision", "Citation precision", "citation_precision"),
    ("citations.recall", "Citation recall", "citation_recall"),
    ("facts.accuracy", "Fact accuracy", "fact_accuracy"),
    ("abstention.accuracy", "Abstention accuracy", "abstention_accuracy"),
    ("abstention.abstain_recall", "Abstain recall", "abstain_recall"),
    ("abstention.false_abstention_rate", "False abstention rate", "false_abstention_rate"),
    ("abstention.gold_shown_abstaining", "False abstentions showing the gold paper (closest)",
     "gold_shown_abstaining"),
    ("abstention.near_miss_recall", "Near-miss abstain recall", "near_miss_recall"),
    ("faithfulness", "Faithfulness (deterministic)", "faithfulness"),
    ("faithfulness_judge", "Judge (model grades itself)", "faithfulness_judge"),
    ("faithfulness_runtime", "Faithfulness (run-time check)", "faithfulness_runtime"),
)
SHORT = ("head", "key", "echo", "extra", "list", "subst", "R@5", "R@10", "MRR", "cit.P",
         "cit.R", "fact", "abst", "abst.R", "falseA", "shownG", "near", "faith", "judge", "runtm")
# The checks whose statement-level unsupported rates are compared.
CHECKS = (("runtime", "run-time check (Answer.claims)"), ("deterministic", "deterministic scorer"),
          ("judge", "LLM judge"))
ORIGIN_LABELS = {"answer": "answer (a sentence of the direct answer)",
                 "quote": "quote (the paper's own sentences)"}


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


def columns(report: dict) -> list[tuple[str, dict]]:
    """(name, summary) of the frozen splits (test, test2), the dev split, then all questions:
    the splits nothing was tuned on come first."""
    splits = report.get("by_split", {})
    return [(name, splits[name]) for name in ("test", "test2", "dev") if name in splits] + [
        ("all", report)]


def _kind_rows(summary: dict) -> list[tuple[str, dict]]:
    return [*summary.get("by_kind", {}).items(), ("all", summary)]


def _misses(summary: dict) -> str:
    counts = summary.get("misses", {})
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items() if v) or "none"


def summary_lines(report: dict) -> list[str]:
    """Plain lines for the terminal: the test split's figures first and in capitals, beside the
    dev split's and all questions'; then per kind for test, then for dev."""
    meta = report.get("meta", {})
    cols = columns(report)
    lines = [f"{report['questions']} questions ({meta.get('mode', '?')}, "
             f"{meta.get('seconds', 0)} s, {meta.get('model', '?')})", ""]
    head = "".join(f"{(n.upper() if n.startswith('test') else n) + ' (%d)' % s['questions']:>12}"
                   for n, s in cols)
    lines.append(f"  {'':<31}{head}")
    for path, label, _ in METRICS:
        lines.append(f"  {label:<31}" + "".join(f"{fmt(metric_at(s, path)):>12}" for _, s in cols))
    for key, label in (("runtime", "run-time check"), ("deterministic", "deterministic"),
                       ("judge", "LLM judge")):
        lines.append(f"  {'Unsupported, ' + label:<31}"
                     + "".join(f"{fmt(metric_at(s, f'unsupported.{key}')):>12}" for _, s in cols))
    for name, summary in cols:
        if name == "all" and len(cols) > 1:
            continue
        title = (f"{name.upper()} split by kind (frozen: the figures that count)"
                 if name.startswith("test") else
                 "dev split by kind (tuned on)" if name == "dev" else "by kind")
        lines += ["", f"  {title}",
                  f"  {'kind':<11}{'n':>4}" + "".join(f"{x:>7}" for x in SHORT)]
        for kind, s in _kind_rows(summary):
            lines.append(f"  {kind:<11}{s['questions']:>4}"
                         + "".join(f"{fmt(metric_at(s, p)):>7}" for p, _, _ in METRICS))
        lines.append(f"  headline misses: {_misses(summary)}")
    lines += ["", "  citations by origin: count, right paper, line supported by its own source"]
    for origin in ORIGIN_LABELS:
        cells = []
        for name, s in cols:
            o = metric_at(s, f"citations.by_origin.{origin}") or {}
            cells.append(f"{name} {o.get('count', 0):>3} {fmt(o.get('precision')):>4} "
                         f"{fmt(o.get('supported')):>4}")
        lines.append(f"  {origin:<11}" + "  |  ".join(cells))
    errors = report.get("errors", 0)
    if errors:
        lines.append(f"  errors: {errors} question(s) raised (see stderr)")
    return lines


def _chart(report: dict, path: str, label: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in KINDS if k in report.get("by_kind", {})]
    cols = [(n, s) for n, s in columns(report) if n != "all"] or [("all", report)]
    width = 0.8 / len(cols)
    colors = {"test": "#4C72B0", "test2": "#55A868", "dev": "#BBBBBB", "all": "#4C72B0"}
    fig, ax = plt.subplots(figsize=(6.5, 3.2), dpi=100)
    for i, (name, summary) in enumerate(cols):
        values = [metric_at(summary.get("by_kind", {}).get(k, {}), path) for k in kinds]
        xs = [x + (i - (len(cols) - 1) / 2) * width for x in range(len(kinds))]
        ax.bar(xs, [v if v is not None else 0 for v in values], width, label=name,
               color=colors.get(name, "#4C72B0"))
        for x, v in zip(xs, values):
            ax.text(x, (v or 0) + 0.02, "n/a" if v is None else fmt(v), ha="center", fontsize=7)
    ax.set_xticks(range(len(kinds)), kinds)
    main_name, main = cols[0]
    overall = metric_at(main, path)
    if overall is not None:
        ax.axhline(overall, color="#C44E52", linestyle="--", linewidth=1,
                   label=f"{main_name} overall {overall:.2f}")
    ax.legend(loc="upper left", fontsize=8, ncol=3, frameon=False)
    ax.set_ylim(0, 1.3)
    ax.set_title(f"{label} by question kind")
    ax.set_ylabel(label)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def _kind_table(summary: dict) -> list[str]:
    out = ["| kind | n | " + " | ".join(label for _, label, _ in METRICS) + " |",
           "|---|---|" + "---|" * len(METRICS)]
    for kind, s in _kind_rows(summary):
        out.append(f"| {kind} | {s['questions']} | "
                   + " | ".join(fmt(metric_at(s, p)) for p, _, _ in METRICS) + " |")
    return out


def markdown(report: dict, charts: dict[str, str]) -> str:
    meta = report.get("meta", {})
    cols = columns(report)
    names = " | ".join(f"{n} ({s['questions']})" for n, s in cols)
    out = ["# Eval report", "",
           f"{report['questions']} questions, model `{meta.get('model', '?')}`, "
           f"{meta.get('mode', '?')} mode, {meta.get('seconds', '?')} s. Deterministic "
           f"faithfulness threshold: similarity >= {meta.get('similarity_threshold', '?')}. "
           "The `test` and `test2` splits are frozen and nothing is tuned on them: their columns "
           "are the ones that count. The LLM judge is the answering model grading its own "
           "answers: a weak second opinion beside the deterministic check.", "",
           "## Overall", "", f"| metric | {names} |", "|---|" + "---|" * len(cols)]
    for path, label, _ in METRICS:
        out.append(f"| {label} | " + " | ".join(fmt(metric_at(s, path)) for _, s in cols) + " |")
    out += ["", "Headline: an answerable question is answered (not abstained), cites a gold "
            "paper, contains the expected value (fact questions and follow-ups that have one), "
            "states its key, every statement passes the deterministic scorer, no statement "
            "restates the question, no line is a bare title or marker, and a single-paper "
            "question cites no other paper; an abstain question abstains and cites nothing. "
            "Abstaining on an answerable question is a miss.", "",
            "### Headline misses", "", f"| reason | {names} |", "|---|" + "---|" * len(cols)]
    for reason in report.get("misses", {}):
        out.append(f"| {reason.replace('_', ' ')} | "
                   + " | ".join(fmt(metric_at(s, f"misses.{reason}")) for _, s in cols) + " |")
    out += ["", "### Unsupported statements by check", "",
            "Share of statements (pooled) each check finds unsupported: the run-time check and "
            "the deterministic scorer judge the answer's statements (`Answer.claims`: the direct "
            "answer's sentences and the quotes); the judge only the direct answer's sentences.",
            "",
            f"| check | {names} |", "|---|" + "---|" * len(cols)]
    for key, label in CHECKS:
        out.append(f"| {label} | " + " | ".join(
            fmt(metric_at(s, f"unsupported.{key}")) for _, s in cols) + " |")
    out += ["", "## Citations by origin", "",
            "One row per (line, citation): right paper = gold or acceptable; supported = the "
            "deterministic scorer passes the line against the text that very source showed the "
            "model (`Citation.quote`).", "",
            "| origin | split | citations | right paper | supported by its source |",
            "|---|---|---|---|---|"]
    for origin, label in ORIGIN_LABELS.items():
        for name, s in cols:
            o = metric_at(s, f"citations.by_origin.{origin}") or {}
            out.append(f"| {label} | {name} | {o.get('count', 0)} | {fmt(o.get('precision'))} | "
                       f"{fmt(o.get('supported'))} |")
    st = report.get("statements", {})
    out += ["", f"Statements (all questions): {st.get('supported', 0)} of {st.get('total', 0)} "
            f"supported (deterministic); judge: {st.get('judge_supported', 0)} of "
            f"{st.get('judge_total', 0)}; run-time check: {st.get('runtime_supported', 0)} of "
            f"{st.get('runtime_total', 0)} lines."]
    for name, summary in cols:
        title = {"test": "By kind: test split (frozen)", "test2": "By kind: test2 split (frozen)",
                 "dev": "By kind: dev split (tuned on)", "all": "By kind: all questions"}[name]
        out += ["", f"## {title}", "", *_kind_table(summary)]
    out += ["", "## Charts", ""]
    for path, label, name in METRICS:
        if name in charts:
            out.append(f"![{label}]({charts[name]})")
    out += ["", "## Questions", "",
            "| id | split | kind | headline | misses | key | subst. | R@5 | R@10 | RR | cit. P | "
            "cit. R | fact | abst. ok | faithful | judge | run-time |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report.get("results", []):
        out.append(" | ".join([
            f"| {r['id']}", r.get("split", "?"), r["kind"], fmt(r.get("correct")),
            _cell(", ".join(r.get("misses", [])) or "–"), fmt(r.get("key")),
            fmt(r.get("substantive")),
            fmt(r["recall_at_5"]), fmt(r["recall_at_10"]),
            fmt(r["reciprocal_rank"]), fmt(r["citation_precision"]), fmt(r["citation_recall"]),
            fmt(r["fact_correct"]), fmt(r["abstention_correct"]), fmt(r["faithfulness"]),
            fmt(r["faithfulness_judge"]), fmt(r.get("faithfulness_runtime")) + " |"]))
    out += ["", "## Details", ""]
    for r in report.get("results", []):
        out += [f"### {r['id']} ({r['kind']})", "",
                f"Split: {r.get('split', '?')}; headline: "
                + ("correct" if r.get("correct") else
                   "missed (" + ", ".join(r.get("misses", [])) + ")"), ""]
        if r.get("error"):
            out += [f"**Error while recording:** `{r['error']}`", ""]
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
        if r.get("citation_checks"):
            out += ["| line | origin | cites | right paper | supported by its "
                    "source | similarity | why |", "|---|---|---|---|---|---|---|"]
            for c in r["citation_checks"]:
                runtime = next((x for x in r.get("claims", []) if x["text"] == c["text"]), None)
                verdict = f" (run-time: {fmt(runtime['supported'])})" if runtime else ""
                out.append(f"| {_cell(c['text'])}{verdict} | {c['origin']} | [{c['n']}] "
                           f"{_cell(c['title'])} | {fmt(c['correct_paper'])} | "
                           f"{fmt(c['supported'])} | {c['similarity']:.2f} | {_cell(c['reason'])} |")
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
