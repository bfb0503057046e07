"""evals/thresholds.json: the bounds CI holds the replayed suite's metrics to, checked by path.

    >>> check_thresholds({"headline": 0.61}, {"min": {"headline": 0.64}, "max": {}})
    ['headline = 0.610 < 0.640']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from assistant.errors import PapersError

from .questions import KINDS, SPLITS
from .suite import summarize


class ThresholdsError(PapersError):
    """evals/thresholds.json is missing, malformed, or names a metric the report lacks."""


def _leaves(d: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in d.items():
        if isinstance(value, dict):
            out += _leaves(value, f"{prefix}{key}.")
        else:
            out.append(prefix + key)
    return out


def known_metric_paths() -> set[str]:
    """Every path a threshold may name: a summary's leaves, overall, per kind, per split and
    per split and kind (`by_split.test.by_kind.fact.facts.accuracy`)."""
    leaves = _leaves(summarize([]))
    groups = [""] + [f"by_kind.{k}." for k in KINDS] + [f"by_split.{s}." for s in SPLITS] + [
        f"by_split.{s}.by_kind.{k}." for s in SPLITS for k in KINDS]
    return {g + leaf for g in groups for leaf in leaves}


_ABSENT = object()


def _lookup(report: dict, path: str) -> Any:
    """The value at `path` (keys may contain '@', never '.'), or _ABSENT."""
    cur: Any = report
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _ABSENT
        cur = cur[part]
    return cur


def metric_at(report: dict, path: str) -> Any:
    """`by_kind.fact.facts.accuracy` -> the value; None where the report has no such path."""
    value = _lookup(report, path)
    return None if value is _ABSENT else value


def _present(report: dict, path: str) -> bool:
    return _lookup(report, path) is not _ABSENT


def check_thresholds(report: dict, thresholds: dict[str, dict[str, float]]) -> list[str]:
    """One line per metric outside its bounds, without a value, or not in the report.

    `thresholds` is `{"min": {path: lowest allowed}, "max": {path: highest allowed}}`, paths
    as in `metric_at` (the format of evals/thresholds.json).
    """
    failures = []
    for bound, op in (("min", "<"), ("max", ">")):
        for path, limit in sorted(thresholds.get(bound, {}).items()):
            value = metric_at(report, path)
            if not _present(report, path):
                failures.append(f"{path}: not in the report ({bound} {limit})")
            elif not isinstance(value, (int, float)) or isinstance(value, bool):
                failures.append(f"{path}: no value ({bound} {limit})")
            elif (value < limit) if bound == "min" else (value > limit):
                failures.append(f"{path} = {value:.3f} {op} {limit:.3f}")
    return failures


def load_thresholds(evals_dir: Path) -> dict[str, dict[str, float]]:
    """evals/thresholds.json: {"min": {...}, "max": {...}} (keys starting with _ are notes).

    Raises ThresholdsError (one line) when the file is missing or malformed, or names a
    metric path the report does not have (renamed or removed: it would never be checked).
    """
    path = Path(evals_dir) / "thresholds.json"
    fix = "; the eval suite checks every metric it names (see evals/README.md)"
    if not path.is_file():
        raise ThresholdsError(f"{path} is missing: restore it from git or "
                              f"write {{\"min\": {{...}}, \"max\": {{...}}}}{fix}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ThresholdsError(f"{path}: not JSON ({exc}); fix the file{fix}") from None
    if not isinstance(data, dict):
        raise ThresholdsError(f"{path}: must be a JSON object with \"min\" and \"max\"{fix}")
    extra = sorted(k for k in data if k not in ("min", "max") and not k.startswith("_"))
    if extra:
        raise ThresholdsError(f"{path}: unknown key(s) {', '.join(extra)}; only \"min\" and "
                              f"\"max\" (and notes starting with _){fix}")
    out: dict[str, dict[str, float]] = {}
    for bound in ("min", "max"):
        items = {k: v for k, v in data.get(bound, {}).items() if not k.startswith("_")}
        bad = sorted(k for k, v in items.items()
                     if isinstance(v, bool) or not isinstance(v, (int, float)))
        if bad:
            raise ThresholdsError(f"{path}: {bound} value(s) of {', '.join(bad)} must be numbers")
        out[bound] = {k: float(v) for k, v in items.items()}
    known = known_metric_paths()
    unknown = sorted(p for bound in out.values() for p in bound if p not in known)
    if unknown:
        raise ThresholdsError(
            f"{path}: unknown metric path(s) {', '.join(unknown)} (renamed or removed?); use "
            "the paths of `papers eval --json`, e.g. by_split.test.headline")
    if not any(out.values()):
        raise ThresholdsError(f"{path}: no thresholds at all{fix}")
    return out
