"""Hostile text in linear time: the LaTeX cleanup, the name patterns and the readers on
pathological input, against plain text of the same length (issue 17, findings 4-5).

    .venv/bin/python benchmarks/hostile_bench.py            # ~30 s
    .venv/bin/python benchmarks/hostile_bench.py --old      # also the old brace loop (adds ~30 s)

Per size: seconds on the pathological text, on plain text of the same length (the baseline),
their ratio, and the growth from the previous size (x4 the size: ~4x when linear, ~16x when
quadratic). `--old` times the cleanup this replaced (two regexes repeated once per brace level).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

_STYLE = re.compile(r"\\(?:emph|textit|textbf|texttt|textsc|textrm|textsf|underline)\{([^{}]*)\}")
_BRACES = re.compile(r"(?<![\\\w^_])\{([^{}\\]*)\}")


def old_unbrace(text: str) -> str:
    """The cleanup before issue 17: one pass of both regexes per level of nesting."""
    previous = None
    while "{" in text and previous != text:
        previous, text = text, _BRACES.sub(r"\1", _STYLE.sub(r"\1", text))
    return text


def best_of(fn, arg, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t0)
    return min(times)


def scaling(name: str, fn, hostile, plain_of, sizes: list[int]) -> None:
    rows, previous = [], None
    for n in sizes:
        bad, plain = hostile(n), plain_of(n)
        t_bad, t_plain = best_of(fn, bad), best_of(fn, plain)
        rows.append([n, len(bad), t_bad, t_plain, t_bad / max(t_plain, 1e-9),
                     t_bad / previous if previous else None])
        previous = t_bad
    print(f"## {name}")
    common.table(["size", "chars", "hostile s", "baseline s", "ratio", "growth"], rows, digits=4)
    print()


def readers(n: int) -> None:
    """read_papers on n hostile records vs n plain ones of similar size: records/s."""
    from assistant.corpus import read_papers

    folder = Path(tempfile.mkdtemp(prefix="pab-hostile-", dir=common.bench_root()))
    hostile = [
        json.dumps({"title": "Tokens <|endoftext|>", "abstract": "Abstract <|im_start|> " * 20}),
        '{"title": "Surrogate \\ud800 Tokens", "abstract": "' + "text " * 40 + '"}',
        "[" * 5_000,
        '{"title": "Huge", "year": ' + "9" * 5_000 + ', "abstract": "' + "text " * 40 + '"}',
        json.dumps({"id": "2301.00001", "title": "{" * 2_000 + "Deep" + "}" * 2_000, "abstract": "a " * 80,
                    "update_date": "2023"}),
    ]
    lines = [hostile[i % len(hostile)].replace("Tokens", f"Tokens {i}") for i in range(n)]
    (folder / "hostile.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plain = [json.dumps({"title": f"Plain {i}", "abstract": "x" * len(line)}) for i, line in enumerate(lines)]
    (folder / "plain.jsonl").write_text("\n".join(plain) + "\n", encoding="utf-8")
    rows = []
    for name in ("plain", "hostile"):
        t0 = time.perf_counter()
        result = read_papers([folder / f"{name}.jsonl"])
        seconds = time.perf_counter() - t0
        rows.append([name, n, result.records, len(result.problems), seconds, n / seconds])
    print(f"## readers: {n} JSONL records (a fifth nested too deeply, a fifth with 2,000-level LaTeX)")
    common.table(["file", "records", "read", "problems", "seconds", "records/s"], rows, digits=2)
    print(f"hostile / plain: {rows[1][4] / rows[0][4]:.2f}x the time")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", action="store_true", help="also time the old brace loop")
    args = parser.parse_args()
    from assistant.latex import clean_latex
    from assistant.retrieval import defined_names

    common.header("hostile_bench: pathological text, linear time")
    # Baselines: the same number of braces side by side ({x}{x}...), and plain words.
    deep, flat = (lambda n: "{" * n + "x" + "}" * n), (lambda n: "{x}" * n)
    scaling("LaTeX cleanup, nested braces {{{...x...}}} (baseline {x}{x}...)", clean_latex, deep, flat,
            [1_000, 4_000, 16_000, 64_000])
    scaling("LaTeX cleanup, nested styles \\emph{\\emph{...}} (baseline \\emph{x}...)", clean_latex,
            lambda n: "\\emph{" * n + "x" + "}" * n, lambda n: "\\emph{x}" * n, [1_000, 4_000, 16_000, 64_000])
    if args.old:
        scaling("the old brace loop (before issue 17), nested braces", old_unbrace, deep, flat,
                [500, 1_000, 2_000, 4_000])
    scaling("name patterns (defined_names), 'a.a.a.' runs (baseline: words)", lambda t: defined_names("T", t),
            lambda n: "a." * n, lambda n: "word " * (n * 2 // 5), [2_000, 8_000, 32_000, 128_000])
    readers(5_000)
    common.footer()


if __name__ == "__main__":
    main()
