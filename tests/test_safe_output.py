"""Untrusted text (abstracts, titles, model output) reaches the terminal without escape sequences.

The hostile abstract below writes the clipboard (OSC 52, ended by BEL and by ST), retitles the
window, clears the screen and moves the cursor; it goes in through the real reader and store.
"""

from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path

from assistant.answer import Assistant
from assistant.chat import source_label
from assistant.config import Settings
from assistant.repl import run_chat
from assistant.text import StreamCleaner, clean
from assistant.types import Answer, Retrieved, Source
from test_cli_search import papers

OSC52_BEL = "\x1b]52;c;cm0gLXJmIH4K\x07"  # clipboard := "rm -rf ~"
OSC52_ST = "\x1b]52;p;ZXZpbA==\x1b\\"
CURSOR = "\x1b[2A\x1b[10D\x1b[2J\x1b[H"  # up 2, left 10, clear screen, home
TITLE = f"Quokka Transformers{OSC52_BEL} for Tide Prediction\x1b]0;pwned\x07"
ABSTRACT = (f"We study quokka transformers for tide prediction.{CURSOR} Our model predicts "
            f"tides{OSC52_ST} within 3 cm.\x9b31m It is small.\r\x08 Code is released.")
HOSTILE = ("\x1b", "\x07", "\x9b", "\r", "\x08")


def _visible(text: str) -> None:
    for ch in HOSTILE:
        assert ch not in text, f"{ch!r} reached the terminal"
    assert "52;" not in text and "pwned" not in text  # removed whole, not just the ESC


def test_clean_removes_sequences_and_keeps_text():
    assert clean(TITLE) == "Quokka Transformers for Tide Prediction"
    assert clean(ABSTRACT) == ("We study quokka transformers for tide prediction. Our model "
                               "predicts tides within 3 cm. It is small. Code is released.")
    assert clean("line one\n\tline two [1]") == "line one\n\tline two [1]"
    assert clean("unterminated \x1b]52;c;abc") == "unterminated "


def test_stream_cleaner_joins_to_clean_at_every_split():
    whole = f"Answer {OSC52_BEL}with {CURSOR}moves{OSC52_ST} and \x1b(B charsets\x1b"
    rng = random.Random(7)
    for _ in range(500):
        cuts = sorted(rng.sample(range(len(whole) + 1), rng.randint(1, 8)))
        parts = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)])]
        shown = StreamCleaner()
        out = [shown.feed(p) for p in parts] + [shown.finish()]
        assert "".join(out) == clean(whole)
        for piece in out:
            _visible(piece)


def _hostile_store(tmp_path) -> Settings:
    src = tmp_path / "hostile.jsonl"
    src.write_text(json.dumps({"title": TITLE, "abstract": ABSTRACT, "year": 2024}) + "\n")
    store = tmp_path / "store"
    done = papers("ingest", str(src), store_dir=store)
    assert done.returncode == 0, done.stderr
    return Settings(store_dir=store, cache_dir=Path(os.environ["PAPERS_CACHE_DIR"]))


def test_hostile_abstract_through_ingest_search_and_open(tmp_path):
    settings = _hostile_store(tmp_path)
    table = papers("search", "quokka tide prediction", store_dir=settings.store_dir)
    assert table.returncode == 0, table.stderr
    assert "Traceback" not in table.stderr
    _visible(table.stdout)
    assert "Quokka" in table.stdout and "quokka" in table.stdout

    as_json = papers("search", "quokka tide prediction", "--json",
                     store_dir=settings.store_dir)
    for ch in HOSTILE:  # JSON escapes ESC as \u001b and the 8-bit CSI as \u009b: data
        assert ch not in as_json.stdout, f"{ch!r} reached the terminal"
    result = json.loads(as_json.stdout)["results"][0]
    assert "\x9b31m" in result["snippet"] and OSC52_BEL in result["title"]  # kept exactly, as data

    # /sources and /open in a piped chat; the answer (with its own sequences) needs no model.
    with Assistant(settings) as real:
        hit = real.search("quokka tide prediction", k=1)[0]
        source = Source(n=1, paper_id=hit.paper_id, title=hit.title, text=ABSTRACT,
                        score=hit.score, year=2024)

        class Scripted:
            def stream_events(self, question, history=(), **kwargs):
                yield Retrieved(query=question, hits=(hit,), sources=(source,), retrieval_s=0.01)
                yield f"Quokkas{OSC52_BEL} predict tides [1]."
                yield Answer(question=question, text=f"Quokkas{CURSOR} predict tides [1].",
                             citations=(), sources=(source,), abstained=False, model="m")

            def paper(self, paper_id):
                return real.paper(paper_id)

            def stats(self):
                return {}

        out, err = io.StringIO(), io.StringIO()
        run_chat(settings, assistant=Scripted(), input=io.StringIO("quokkas?\n/sources\n/open 1\n"),
                 output=out, error_output=err)
    text = out.getvalue()
    _visible(text)
    _visible(err.getvalue())
    assert "Traceback" not in err.getvalue()
    assert "Quokkas predict tides" in text
    assert "Quokka Transformers for Tide Prediction" in text  # /sources and /open titles
    assert "within 3 cm" in text  # /open shows the stored abstract, cleaned
    assert source_label(source) == "Quokka Transformers for Tide Prediction (2024)"
