"""`papers chat`: conversation state (assistant.chat) and the terminal UI (assistant.repl).

Unit tests use `FakeAssistant` (tests/chat_driver.py). The terminal tests drive
tests/chat_driver.py in a real pty with pexpect and assert on what the screen shows: with the
fake (cancel, errors, history) and with the real Assistant replaying recorded model responses
from tests/cassettes/test_chat/ (re-record: `PAPERS_RECORD=1 PAPERS_RECORD_BASE_URL=... pytest
tests/test_chat.py`).
"""

from __future__ import annotations

import io
import os
import re
import sys
import time
from pathlib import Path

import pytest

from assistant.chat import (
    MAX_QUESTION_CHARS,
    ChatInputError,
    Command,
    Conversation,
    describe_filters,
    parse_command,
    parse_filters,
    suggest_command,
    trim_question,
)
from assistant.config import Settings
from assistant.errors import LLMError
from assistant.chat_render import markdown
from assistant.repl import TailView, run_chat, status_line
from assistant.types import Answer, Filters, Retrieved, Turn
from chat_driver import FakeAssistant

TESTS = Path(__file__).resolve().parent
DRIVER = TESTS / "chat_driver.py"
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-B]|\x1b[=>]|\r")


# --- filters -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("year>=2022", Filters(year_min=2022)),
        ("year<=2023", Filters(year_max=2023)),
        ("year>2021", Filters(year_min=2022)),
        ("year<2024", Filters(year_max=2023)),
        ("year=2022", Filters(year_min=2022, year_max=2022)),
        ("year=2021-2023", Filters(year_min=2021, year_max=2023)),
        ("year=2021-", Filters(year_min=2021)),
        ("year >= 2022  category = cs.CL", Filters(year_min=2022, category="cs.CL")),
        ("year>=2022 category=cs.CL source=000_x.txt",
         Filters(year_min=2022, category="cs.CL", source="000_x.txt")),
        ("cat=cs.LG", Filters(category="cs.LG")),
        ("year:2020", Filters(year_min=2020, year_max=2020)),
    ],
)
def test_parse_filters(text, expected):
    assert parse_filters(text) == expected


def test_parse_filters_updates_field_by_field_and_clears():
    current = parse_filters("year>=2022")
    current = parse_filters("category=cs.CL", current)
    assert current == Filters(year_min=2022, category="cs.CL")
    assert parse_filters("category=", current) == Filters(year_min=2022)
    assert parse_filters("year=", current) == Filters(category="cs.CL")
    assert parse_filters("clear", current) == Filters()
    assert parse_filters("", current) == current


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("year>=22", "not a year"),
        ("year=2024-2020", "is empty"),
        ("author=smith", "unknown filter 'author'"),
        ("category>cs", "takes '='"),
        ("2022", "cannot read filter"),
    ],
)
def test_parse_filters_errors_say_what_to_type(text, message):
    with pytest.raises(ChatInputError, match=message) as info:
        parse_filters(text)
    assert "\n" not in str(info.value)


def test_describe_filters():
    assert describe_filters(Filters()) == "none"
    assert describe_filters(Filters(2021, 2023, "cs.CL")) == "year 2021-2023, category cs.CL"
    assert describe_filters(Filters(year_min=2022, source="a.txt")) == "year >= 2022, source a.txt"
    assert describe_filters(Filters(2022, 2022)) == "year 2022"


# --- input helpers -------------------------------------------------------------------------------


def test_trim_question():
    assert trim_question("  short  ") == ("short", False)
    long = "word " * 1000
    trimmed, was = trim_question(long)
    assert was and len(trimmed) <= MAX_QUESTION_CHARS and trimmed.endswith("word")


def test_parse_command():
    assert parse_command("what is CoT?") is None
    assert parse_command("/open 2") == Command("/open", "2")
    assert parse_command("  /K   7 ") == Command("/k", "7")
    assert parse_command("/exit") == Command("/quit", "")
    assert parse_command("/usr/lib is a path") is None
    assert parse_command("/frobnicate x") == Command("/frobnicate", "x")
    assert suggest_command("/fliter") == "/filter"
    assert suggest_command("/sorces") == "/sources"
    assert suggest_command("/zzzzzz") is None


def test_live_preview_shows_the_last_lines_that_fit():
    from rich.console import Console

    console = Console(width=40, record=True, color_system=None)
    text = "\n\n".join(f"Paragraph {i} says something [1]." for i in range(10))
    console.print(TailView(markdown(text), height=5))
    lines = console.export_text().splitlines()
    assert len(lines) == 5
    assert lines[0] == "… 15 lines above" and lines[-1].startswith("Paragraph 9 says")


# --- Conversation --------------------------------------------------------------------------------


def _answer_of(events) -> Answer:
    return [e for e in events if isinstance(e, Answer)][-1]


def test_conversation_passes_history_and_keeps_turns():
    fake = FakeAssistant()
    conv = Conversation(fake, k=2, model="m1")
    events = list(conv.stream_events("How do LLMs reason step by step?"))
    assert isinstance(events[0], Retrieved)
    assert all(isinstance(e, str) for e in events[1:-1]) and isinstance(events[-1], Answer)
    assert fake.calls[0]["history"] == [] and fake.calls[0]["k"] == 2
    assert fake.calls[0]["model"] == "m1" and fake.calls[0]["filters"] is None

    answer = conv.ask("what strategies does it propose?")
    first = events[-1]
    assert fake.calls[1]["history"] == [Turn("How do LLMs reason step by step?", first.text,
                                             ("p-cot",))]  # what "it" points to
    assert answer.query.startswith("How do LLMs reason")  # the fake's "rewritten" query
    assert [t.question for t in conv.history] == ["How do LLMs reason step by step?",
                                                   "what strategies does it propose?"]
    assert conv.last_answer is answer and conv.last_sources == answer.sources


def test_a_follow_up_points_at_the_papers_beyond_the_list_cap_too():
    """"Which of them ..." after a long list reads the papers /more shows, not only the 8."""
    fake = FakeAssistant()
    conv = Conversation(fake, k=2)
    first = conv.ask("which papers, many of them?")
    assert first.more  # the fake's second paper is beyond the cap
    conv.ask("which of them uses a debate?")
    papers = fake.calls[1]["history"][-1].papers
    assert papers == (*(s.paper_id for s in first.sources), *(s.paper_id for s in first.more))


def test_conversation_history_is_bounded():
    fake = FakeAssistant()
    conv = Conversation(fake, max_history_turns=2)
    for i in range(4):
        conv.ask(f"question {i}")
    assert [t.question for t in fake.calls[-1]["history"]] == ["question 1", "question 2"]
    assert len(conv.history) == 4


def test_cancelled_or_failed_answers_are_not_kept():
    fake = FakeAssistant()
    conv = Conversation(fake)
    events = conv.stream_events("How do LLMs reason?")
    assert isinstance(next(events), Retrieved)
    next(events)
    events.close()  # what Ctrl-C does
    assert conv.history == [] and conv.exchanges == []
    assert conv.last_sources  # the papers that were being read stay inspectable (/sources)

    with pytest.raises(LLMError):
        conv.ask("llmfail now")
    assert conv.history == []
    conv.ask("How do LLMs reason?")
    assert len(conv.history) == 1


def test_conversation_settings_and_reset():
    fake = FakeAssistant()
    conv = Conversation(fake)
    assert conv.set_k("3") == 3
    for bad in ("0", "x", "101"):
        with pytest.raises(ChatInputError):
            conv.set_k(bad)
    assert conv.set_model("qwen2.5:7b") == "qwen2.5:7b"
    with pytest.raises(ChatInputError):
        conv.set_model("two words")
    conv.set_filters("year>=2022")
    conv.ask("first")
    assert fake.calls[-1]["filters"] == Filters(year_min=2022)
    conv.reset()
    assert conv.history == [] and conv.last_answer is None and conv.last_sources == ()
    conv.ask("second")
    assert fake.calls[-1]["history"] == []
    assert len(conv.exchanges) == 2  # the transcript keeps the whole session


def test_sources_and_open():
    conv = Conversation(FakeAssistant())
    with pytest.raises(ChatInputError, match="ask a question first"):
        conv.source(1)
    conv.ask("How do LLMs reason?")
    source, paper = conv.open_source("1")
    assert source.n == 1 and paper is not None and paper.abstract.startswith("Despite")
    with pytest.raises(ChatInputError, match="no source \\[9\\]; the last sources are 1$"):
        conv.source(9)


def test_transcript_markdown():
    conv = Conversation(FakeAssistant())
    assert "No questions" in conv.transcript_markdown()
    conv.ask("How do LLMs reason step by step?")
    conv.ask("what strategies does it propose?")
    conv.reset()
    conv.ask("abstain please")
    text = conv.transcript_markdown()
    assert "## How do LLMs reason step by step?" in text
    assert "## what strategies does it propose?" in text
    assert "LLaMA-2 7B [1]" in text
    assert ('[1] How to think step-by-step: A mechanistic understanding of chain-of-thought '
            'reasoning (2024): "Despite') in text
    assert "Related, not cited: Pretraining on the Test Set Is No Longer All You Need" in text
    assert "_(conversation reset)_" in text
    assert text.index("_(conversation reset)_") < text.index("## abstain please")


def test_status_line():
    conv = Conversation(FakeAssistant())
    answer = conv.ask("How do LLMs reason?")
    line = status_line(answer, Settings())
    assert line.startswith("fake-model · retrieval 42 ms · first token 500 ms · total ")
    assert line.endswith("812 in / 64 out tokens")
    abstained = conv.ask("abstain")
    assert status_line(abstained, Settings()).endswith("no model call")


# --- piped mode, in process ----------------------------------------------------------------------


def _piped(text: str, assistant=None, **kwargs) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_chat(Settings(), assistant=assistant or FakeAssistant(), input=io.StringIO(text),
                    output=out, error_output=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


def test_piped_answers_plainly_one_line_each():
    code, out, err = _piped("How do LLMs reason step by step?\n\nwhat strategies does it "
                            "propose?\n")
    assert code == 0 and err == ""
    assert "\x1b[" not in out  # no colors, no cursor movement
    assert "LLaMA-2 7B [1]." in out
    assert ("Evidence:\n[1] How to think step-by-step: A mechanistic understanding of "
            "chain-of-thought reasoning (2024): \"Despite") in out
    assert "**debate-driven** evaluation" in out  # the model's text, verbatim
    assert '[1] Pretraining on the Test Set Is No Longer All You Need: A Debate-Driven' in out


def test_piped_commands_errors_and_exit_status():
    fake = FakeAssistant()
    script = "/k 2\n/filter year>=2024\nllmfail\n/bogus\nHow?\n/sources\n/quit\nnever asked\n"
    code, out, err = _piped(script, fake)
    assert code == 1  # a question failed
    assert "error: cannot reach the model server" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err  # one line, then on
    assert "Unknown command /bogus" in out
    assert [c["question"] for c in fake.calls] == ["llmfail", "How?"]
    assert fake.calls[-1]["k"] == 2 and fake.calls[-1]["filters"] == Filters(year_min=2024)
    assert "score 0.900" in out  # /sources


def test_more_and_unverified_show_what_the_answer_left_aside():
    """/more: the papers beyond the list's cap, with their quotes; /unverified: the sentences
    the check left out, marked, with the reason."""
    code, out, _ = _piped("/more\nmany shaky papers?\n/more\n/unverified\n/open 2\n")
    assert code == 0
    assert "no answer yet: ask a question first" in out
    assert '[2] Pretraining on the Test Set Is No Longer All You Need' in out  # /more
    assert "It solves every benchmark [1]. (unverified)" in out
    assert "why: number(s) not in cited text: 100" in out
    assert "Despite" not in out.split("/open")[-1] or "As frontier" in out  # /open 2 works


def test_export_and_bib_write_the_last_answer(tmp_path):
    """/export FILE: the last answer as Markdown with its references; /bib: its BibTeX."""
    md, bib = tmp_path / "answer.md", tmp_path / "cited.bib"
    code, out, _ = _piped(f"/bib\nHow do LLMs reason step by step?\n/export {md}\n/bib {bib}\n/bib\n")
    assert code == 0 and "no answer yet: ask a question first" in out
    text = md.read_text(encoding="utf-8")
    assert text.startswith("## How do LLMs reason step by step?\n\nChain-of-thought reasoning")
    assert text.endswith("### References\n\n1. Subhabrata Dutta, Joykirat Singh (2024). *How to "
                         "think step-by-step: A mechanistic understanding of chain-of-thought "
                         "reasoning*.\n")
    assert bib.read_text(encoding="utf-8").startswith("@misc{dutta2024think,\n  title = {{How to")
    assert "Saved 1 entry to" in out and "@misc{dutta2024think," in out  # /bib shows it


def test_piped_trims_long_input_with_a_notice():
    fake = FakeAssistant()
    code, out, _ = _piped("x" * 5000 + "\n", fake)
    assert code == 0
    assert "trimmed to 2,000 characters (it had 5,000)" in out
    assert len(fake.calls[0]["question"]) == MAX_QUESTION_CHARS


def test_missing_store_at_start_keeps_the_session(monkeypatch, tmp_path):
    """No store: the error is shown, and each question tries again (here: still missing)."""
    import assistant.repl as repl
    from assistant.errors import StoreMissingError

    tries = []

    def missing(settings):
        tries.append(1)
        raise StoreMissingError("no papers in the store; run `papers ingest` first")

    monkeypatch.setattr(repl, "_default_assistant", missing)
    out, err = io.StringIO(), io.StringIO()
    code = run_chat(Settings(), input=io.StringIO("q1\n/help\nq2\n"), output=out,
                    error_output=err)
    assert code == 1
    assert err.getvalue().count("run `papers ingest` first") == 3  # at start, then each question
    assert "Traceback" not in err.getvalue()
    assert "/sources" in out.getvalue() and len(tries) == 3


def test_save_transcript(tmp_path):
    target = tmp_path / "chat.md"
    code, out, _ = _piped(f"How do LLMs reason step by step?\n/save {target}\n")
    assert code == 0 and "Saved 1 answer to" in out
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# Paper assistant chat")
    assert "LLaMA-2 7B [1]" in text and "[1] How to think step-by-step" in text


# --- a real terminal (pexpect) -------------------------------------------------------------------

import pexpect  # noqa: E402  (a dev dependency: missing, the run fails instead of skipping)


class Terminal:
    """A child in a real pty; `expect` waits for text to appear on screen (ANSI codes removed).

    Each `expect` searches after the previous match, so a conversation is checked in order.
    """

    def __init__(self, env_extra: dict[str, str], cwd: Path, *args: str, rows: int = 50,
                 cols: int = 120):
        env = dict(os.environ)
        env.update({"TERM": "xterm-256color", "PYTHONUNBUFFERED": "1"})
        env.pop("COLUMNS", None)
        env.pop("LINES", None)
        env.update(env_extra)
        self.child = pexpect.spawn(sys.executable, [str(DRIVER), *args], env=env, cwd=str(cwd),
                                   dimensions=(rows, cols), encoding="utf-8", timeout=30)
        self.raw = ""
        self.position = 0

    @property
    def screen(self) -> str:
        return ANSI.sub("", self.raw)

    def _read(self, wait: float) -> bool:
        try:
            self.raw += self.child.read_nonblocking(65536, timeout=wait)
        except pexpect.TIMEOUT:
            pass
        except pexpect.EOF:
            return False
        return True

    def expect(self, text: str, timeout: float = 30) -> str:
        """Wait until `text` shows after the last match; return the screen text in between."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen
            found = screen.find(text, self.position)
            if found >= 0:
                between = screen[self.position:found]
                self.position = found + len(text)
                return between
            alive = self._read(0.1)
            if not alive or time.monotonic() > deadline:
                why = "the chat exited" if not alive else f"{timeout:.0f} s passed"
                raise AssertionError(f"{text!r} never showed ({why}); screen since the last "
                                     f"match:\n{screen[self.position:][-3000:]}")

    def prompt(self, timeout: float = 30) -> None:
        self.expect(PROMPT, timeout)

    def send(self, text: str) -> None:
        self.child.send(text)

    def ask(self, line: str) -> None:
        self.child.send(line + "\r")

    def finish(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self._read(0.2):
            if time.monotonic() > deadline:
                raise AssertionError("the chat did not exit")
        self.child.close()
        return self.child.exitstatus


PROMPT = "❯"


def test_terminal_cancel_error_and_quit_with_fake(tmp_path):
    term = Terminal({"PAPERS_CHAT_FAKE": "1", "PAPERS_CHAT_FAKE_DELAY": "0.4"}, tmp_path)
    term.prompt()
    term.ask("How do LLMs reason step by step?")
    term.expect("1 paper answer")  # the evidence, before the model writes
    term.expect("[1] How to think step-by-step")
    term.expect("Chain-of-thought")  # the model is writing
    term.send("\x03")  # Ctrl-C
    term.expect("(answer cancelled)")
    term.prompt()

    term.ask("llmfail please")
    term.expect("error: cannot reach the model server")
    term.prompt()
    term.ask("")  # empty input does nothing
    term.prompt()
    term.ask("/sources")  # the cancelled answer's papers are still there
    term.expect("score 0.900")
    term.prompt()
    term.ask("/quit")
    term.expect("Bye.")
    assert term.finish() == 0
    assert "Traceback" not in term.screen
    history = Path(os.environ["PAPERS_CACHE_DIR"]) / "chat_history"
    assert "How do LLMs reason step by step?" in history.read_text(encoding="utf-8")


def test_terminal_ctrl_d_exits_and_history_recalls(tmp_path):
    term = Terminal({"PAPERS_CHAT_FAKE": "1"}, tmp_path)
    term.prompt()
    term.ask("/k 2")
    term.expect("k set to 2")
    term.prompt()
    term.send("\x1b[A")  # Up: the previous line comes back
    term.expect("/k 2")
    term.send("\x15")  # Ctrl-U clears it
    term.send("\x04")  # Ctrl-D on an empty line
    term.expect("Bye.")
    assert term.finish() == 0


def test_terminal_multi_line_paste_is_one_question(tmp_path):
    term = Terminal({"PAPERS_CHAT_FAKE": "1"}, tmp_path)
    term.prompt()
    # A bracketed paste (what terminals send for Ctrl-Shift-V) keeps its newlines; Enter sends.
    term.send("\x1b[200~Compare these two claims:\nfirst line\nsecond line\x1b[201~")
    term.send("\r")
    term.expect("1 paper answer")
    # The final answer replaces the live preview: the direct answer, then the evidence.
    term.expect("LLaMA-2 7B [1].")
    term.expect("Evidence:")
    term.expect("out tokens")
    term.prompt()
    term.ask("/save paste.md")
    term.expect("Saved 1 answer to")
    term.send("\x04")
    term.expect("Bye.")
    assert term.finish() == 0
    transcript = (tmp_path / "paste.md").read_text(encoding="utf-8")
    assert "## Compare these two claims: first line second line" in transcript
    assert "> first line\n> second line" in transcript


def test_chat_command_options(monkeypatch, tmp_path):
    """The registered `papers chat` passes -k and --model through to the session."""
    from typer.testing import CliRunner

    import assistant.cli as cli
    import assistant.repl as repl

    seen = {}

    def fake_run_chat(settings, *, k=None, model=None):
        seen.update(k=k, model=model)
        return 0

    monkeypatch.setattr(repl, "run_chat", fake_run_chat)
    monkeypatch.setattr(cli, "_ensure_store", lambda settings: None)
    result = CliRunner().invoke(cli.app, ["chat", "-k", "7", "--model", "m1"])
    assert result.exit_code == 0, result.output
    assert seen == {"k": 7, "model": "m1"}
    assert CliRunner().invoke(cli.app, ["chat", "-k", "0"]).exit_code == 2  # min=1


# --- a real terminal with the real Assistant, replaying recorded model answers ----------------

from recording import CASSETTES, RECORD  # noqa: E402  (tests/recording.py, the pytest plugin)

from assistant.config import LOCAL_MODEL  # noqa: E402

CHAT_CASSETTES = CASSETTES / "test_chat"
# Replaying answers at once; recording runs the model (~20 s a call on 2 cores).
ANSWER_TIMEOUT = 900 if RECORD else 60
COT_TITLE = "How to think step-by-step: A mechanistic understanding of chain-of-thought reasoning"
GAP_TITLE = "Efficient Continual Pre-training by Mitigating the Stability Gap"


def _shows(screen: str, phrase: str) -> bool:
    """`phrase` is on screen, wherever rich wrapped its lines."""
    pattern = r"\s+".join(re.escape(word) for word in phrase.split())
    return re.search(pattern, screen) is not None


def _replay_env(store: Settings, base_url: str, cassette: str) -> dict[str, str]:
    """What the child needs to answer like the recording: same store and model."""
    return {
        "PAPERS_STORE_DIR": str(store.store_dir),
        "PAPERS_LLM_BASE_URL": base_url,
        "PAPERS_LLM_MODEL": LOCAL_MODEL,
        "PAPERS_LLM_MAX_RETRIES": "0",
        "PAPERS_REPLAY_CASSETTE": str(CHAT_CASSETTES / cassette),
        "PAPERS_RECORD": "1" if RECORD else "0",
    }


def test_terminal_conversation_with_follow_up(tmp_path, bundled_store, recording_base_url):
    """A question, a follow-up that only makes sense in context, /sources, /open, /save, /quit."""
    term = Terminal(_replay_env(bundled_store, recording_base_url, "terminal_follow_up.yaml"),
                    tmp_path)
    term.expect("papers chat", timeout=120)  # the banner, once the store and retriever are up
    term.prompt()
    term.ask("Which papers study the stability gap?")
    # The evidence shows before the model writes (the preview), then the whole answer: the
    # direct answer first, the evidence after it, then the status line.
    preview = term.expect("writing the answer", timeout=ANSWER_TIMEOUT)
    assert "1 paper answer" in preview
    answer = term.expect("out tokens", timeout=ANSWER_TIMEOUT)
    assert _shows(answer, f"[1] {GAP_TITLE}:")
    assert answer.index("Evidence:") < answer.index(f"[1] {GAP_TITLE}")
    assert f"{LOCAL_MODEL} · retrieval " in answer and "first token" in answer
    term.prompt()

    term.ask("what strategies does it propose?")  # "it": only the conversation says which
    follow_up = term.expect("out tokens", timeout=ANSWER_TIMEOUT)
    # the paper the first answer cited; the model's own sentence names its three strategies
    # (recorded: "... proposes three strategies: ... multiple epochs, ... high-quality
    # sub-corpus, and ... a data mixture ... [1].")
    assert _shows(follow_up, f"[1] {GAP_TITLE}:")
    assert _shows(follow_up, "proposes three strategies:") and _shows(follow_up, "distribution gap [1].")
    term.prompt()

    term.ask("/sources")
    sources = term.expect("/open N shows")
    assert GAP_TITLE in sources and "score " in sources
    term.prompt()
    term.ask("/open 1")
    opened = term.expect("╯")
    assert "Continual pre-training has increasingly become" in opened
    assert "from 003_958efcd1eedfa573.txt" in opened
    term.prompt()
    term.ask("/save chat.md")
    term.expect("Saved 2 answers to")
    term.prompt()
    term.ask("/quit")
    term.expect("Bye.")
    assert term.finish(timeout=60) == 0, "the cassette was not replayed entirely"
    assert "error:" not in term.screen and "Traceback" not in term.screen
    transcript = (tmp_path / "chat.md").read_text(encoding="utf-8")
    assert "## what strategies does it propose?" in transcript
    assert f"[1] {GAP_TITLE}:" in transcript


def test_piped_questions_replayed(tmp_path, bundled_store, recording_base_url):
    """stdin not a terminal: one question a line, plain answers with their sources."""
    import subprocess

    env = dict(os.environ)
    env.update(_replay_env(bundled_store, recording_base_url, "piped_two_questions.yaml"))
    result = subprocess.run(
        [sys.executable, str(DRIVER)], cwd=tmp_path, env=env, text=True, capture_output=True,
        input="How do LLMs carry out chain-of-thought reasoning internally?\n"
              "Which paper proposes a debate-driven evaluation of QA benchmarks?\n",
        timeout=ANSWER_TIMEOUT * 2)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\x1b[" not in out and "writing the answer" not in out  # plain answers only
    assert out.count("Evidence:\n") == 2
    assert f"] {COT_TITLE}" in out
    assert "Debate-Driven Approach to QA Benchmarks" in out
