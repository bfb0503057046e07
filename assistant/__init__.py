"""paper-assistant: grounded question answering over research-paper abstracts.

    from assistant import Assistant
    answer = Assistant().ask("Which papers study the stability gap?")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = [
    "Answer", "Assistant", "Citation", "Filters", "Hit", "Paper", "PapersError", "Settings",
    "Source", "Turn", "__version__",
]

# Imports are lazy so that `papers --help` does not pay for chromadb and onnxruntime.
_WHERE = {
    "Assistant": "answer", "Settings": "config", "PapersError": "errors", "Answer": "types",
    "Citation": "types", "Filters": "types", "Hit": "types", "Paper": "types", "Source": "types",
    "Turn": "types",
}

if TYPE_CHECKING:  # pragma: no cover
    from .answer import Assistant
    from .config import Settings
    from .errors import PapersError
    from .types import Answer, Citation, Filters, Hit, Paper, Source, Turn


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'assistant' has no attribute {name!r}")
