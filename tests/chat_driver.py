"""Runs `papers chat` (assistant.repl) in a child process for the terminal tests.

Test-only hooks, read here and nowhere in the product code:

- `PAPERS_REPLAY_CASSETTE=<path>`: the real Assistant, with every model call replayed from that
  vcrpy cassette (`assistant.recording.use_recording`, record mode "none"); the process exits
  with status 3 if an interaction of the cassette was never played (the conversation drifted).
  With `PAPERS_RECORD=1` as well, the calls are recorded instead.
- `PAPERS_CHAT_FAKE=1`: a scripted `FakeAssistant` (no store, no model), streaming one word
  every `PAPERS_CHAT_FAKE_DELAY` seconds: for cancellation and error-path tests.

    python tests/chat_driver.py [-k N] [--model NAME]
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import netguard  # noqa: E402  (tests/, this script's folder: sys.path[0])

netguard.install()  # the chat runs behind the same loopback-only guard as the tests

from assistant.errors import LLMError, StoreMissingError  # noqa: E402

# A test run started in the background (CI, `cmd &`) hands its children SIGINT ignored, and Python
# then installs no KeyboardInterrupt handler: restore it, as an interactive terminal has it.
signal.signal(signal.SIGINT, signal.default_int_handler)
from assistant.types import (  # noqa: E402
    Answer,
    Chunk,
    Citation,
    Claim,
    Hit,
    Paper,
    Related,
    Retrieved,
    Source,
    Timings,
    Usage,
)

FAKE_PAPERS = (
    Paper("p-cot", "How to think step-by-step: A mechanistic understanding of chain-of-thought "
          "reasoning", "Despite superior reasoning prowess demonstrated by Large Language Models "
          "(LLMs) with Chain-of-Thought (CoT) prompting, a lack of understanding prevails around "
          "the internal mechanisms of the models that facilitate CoT generation.",
          authors=("Subhabrata Dutta", "Joykirat Singh"), year=2024, categories=("cs.CL",),
          sources=("000_f4c403a82406db2a.txt",)),
    Paper("p-debate", "Pretraining on the Test Set Is No Longer All You Need: A Debate-Driven "
          "Approach to QA Benchmarks", "As frontier language models increasingly saturate "
          "standard QA benchmarks, concerns about data contamination persist. We propose a "
          "debate-driven evaluation paradigm.", year=2025, sources=("004_6aae409bf07b199f.txt",)),
    Paper("p-instantid", "InstantID: Zero-shot Identity-Preserving Generation in Seconds",
          "There has been significant progress in personalized image synthesis.", year=None),
)


class FakeAssistant:
    """Scripted stand-in for `answer.Assistant` with the same `stream_events` contract and
    answer shape: the evidence (`Retrieved`), the direct answer's sentences, the evidence block.

    Question words steer it: "abstain" abstains, "llmfail" raises LLMError after retrieval,
    "storefail" raises StoreMissingError before it. A follow-up (history given) cites the
    second paper, a first question the first; the others are related.
    """

    def __init__(self, delay: float = 0.0, model: str = "fake-model"):
        self.delay = delay
        self.model = model
        self.calls: list[dict] = []

    def stats(self) -> dict:
        return {"papers": len(FAKE_PAPERS)}

    def paper(self, paper_id: str) -> Paper | None:
        return next((p for p in FAKE_PAPERS if p.paper_id == paper_id), None)

    def close(self) -> None:
        pass

    def stream_events(self, question, history=None, *, k=None, filters=None, model=None):
        from assistant.answer_text import abstention_text, evidence_text

        self.calls.append({"question": question, "history": list(history or []), "k": k,
                           "filters": filters, "model": model})
        lowered = question.lower()
        if "storefail" in lowered:
            raise StoreMissingError("no store at ./store; run `papers ingest` first")
        query = question if not history else f"{history[-1].question} / {question}"
        papers = FAKE_PAPERS[: k or 3]
        hits = tuple(Hit(i + 1, p.paper_id, p.title, 0.9 - i / 10,
                         (Chunk(f"{p.paper_id}#0", p.paper_id, p.title, p.abstract, 0, 1),),
                         year=p.year) for i, p in enumerate(papers))
        if "abstain" in lowered:
            yield Retrieved(query, hits, (), 0.042)
            text = abstention_text(hits[:3])
            yield text
            yield Answer(question, text, (), (), True, model or self.model,
                         timings=Timings(0.042, None, 0.05), query=query,
                         closest=tuple(h.title for h in hits[:3]))
            return
        paper = papers[1] if history and len(papers) > 1 else papers[0]
        sources = (Source(1, paper.paper_id, paper.title, paper.abstract, 0.9, paper.year),)
        related = tuple(Related(p.paper_id, p.title, p.year) for p in papers
                        if p.paper_id != sources[0].paper_id)
        yield Retrieved(query, hits, sources, 0.042, related=related)
        if "llmfail" in lowered:
            raise LLMError("cannot reach the model server at http://127.0.0.1:9; is it running?")
        if history:
            direct = ("The paper proposes a **debate-driven** evaluation in which models argue "
                      "over answers [1].")
        else:
            direct = ("Chain-of-thought reasoning is traced to parallel pathways in LLaMA-2 7B "
                      "[1].")
        started = time.monotonic()
        for index, word in enumerate(direct.split(" ")):
            if self.delay:
                time.sleep(self.delay)
            yield word if index == 0 else " " + word
        # "many": a second paper beyond the list's cap; "shaky": a sentence the check left out
        more = tuple(Source(2, p.paper_id, p.title, p.abstract, 0.5, p.year) for p in papers[1:2]
                     if "many" in lowered)
        left_out = tuple(Claim("It solves every benchmark [1].", (1,), False,
                               "number(s) not in cited text: 100") for _ in range("shaky" in lowered))
        rest = evidence_text(sources, related, len(more), len(left_out))
        yield "\n\n" + rest
        text = direct + "\n\n" + rest
        citations = (Citation(1, sources[0].paper_id, sources[0].title, sources[0].text),)
        claims = (Claim(direct, (1,), True), Claim(f"{sources[0].text} [1]", (1,), True, origin="quote"))
        yield Answer(question, text, citations, sources, False, model or self.model,
                     usage=Usage(812, 64), claims=claims, related=related, more=more,
                     left_out=left_out, papers=(paper,),
                     timings=Timings(0.042, 0.5, 0.5 + time.monotonic() - started), query=query)


def main() -> int:
    from assistant.config import Settings
    from assistant.repl import main as repl_main

    if os.environ.get("PAPERS_CHAT_FAKE"):
        from assistant.repl import run_chat

        delay = float(os.environ.get("PAPERS_CHAT_FAKE_DELAY", "0"))
        return run_chat(Settings(), assistant=FakeAssistant(delay=delay))

    cassette = os.environ.get("PAPERS_REPLAY_CASSETTE")
    if not cassette:
        return repl_main(sys.argv[1:])

    from assistant.recording import RecordingError, use_recording

    recording = os.environ.get("PAPERS_RECORD") == "1"
    rerecord = "PAPERS_RECORD=1 .venv/bin/python -m pytest tests/test_chat.py"
    try:
        with use_recording(cassette, record=recording, rerecord=rerecord):
            return repl_main(sys.argv[1:])
    except RecordingError as err:  # some recorded call was never made: the chat drifted
        print(f"chat_driver: {err}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
