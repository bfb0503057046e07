"""The eval suite behind `papers eval`: questions, metrics, faithfulness scorers, report.

    >>> from assistant.evaluation import run_suite            # doctest: +SKIP
    >>> report = run_suite(Settings())                        # replays evals/cassettes
    >>> report.to_dict()["retrieval"]["recall@5"]             # doctest: +SKIP

Modules: questions (the question file), metrics (pure scoring functions), faithfulness
(statement splitter, deterministic scorer, calibration), judge (LLM judge, RAGAS style),
vectors (embedding cache, the eval's store), suite (record/replay run -> EvalReport),
report (terminal and Markdown output), command (`papers eval`).
"""

from __future__ import annotations

__all__ = ["EvalReport", "StaleRecordingsError", "run_suite"]


def __getattr__(name: str):
    if name in __all__:
        from . import suite

        return getattr(suite, name)
    raise AttributeError(name)
