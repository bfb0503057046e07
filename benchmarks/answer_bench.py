"""End-to-end answers with the embedded model: how soon the evidence, the first model token and
the whole answer arrive, on the dev split (tuned on; test and test2 are only reported elsewhere).

    .venv/bin/python benchmarks/answer_bench.py               # 10 dev questions, ~3 min on 2 cores
    .venv/bin/python benchmarks/answer_bench.py --n 4 --kinds fact

The model: PAPERS_LLM_BASE_URL taken from /tmp/llm_server_url when that file exists (a running
`papers llm serve`, i.e. the embedded Qwen2.5-Coder-1.5B), else --base-url, else the Assistant
starts the embedded model itself (first question then includes its start).

Questions: answerable dev questions of evals/questions.jsonl (follow-ups with their history),
taken round-robin over --kinds. Per question, through `Assistant.stream_events` (what `papers
ask` and the chat run):
  evidence  seconds to the Retrieved event: the papers that answer, with their quotes, shown
            before the model writes (the first useful text)                    [median <= 2 s]
  ttft      seconds to the model's first token (the direct answer's request)  [median <= 4 s]
  total     seconds to the final Answer                        [3-paper answers: median <= 12 s]
  prompt    prompt tokens of the request, as the server reports them; `cached` = those its
            prompt cache reused (the fixed system prompt with its worked examples)
  probe     a 1-token request (the same system prompt + "Say OK.") timed just before each
            question: the baseline of the same run (server queue + minimal prefill)
Then `papers ask` as a new process: seconds from spawning it to its retrieval being done (the
evidence decided), against `python -c pass` spawned the same way      [median <= 1 s]
The store is the shared benchmark store of the bundled corpus. One untimed warm-up question
loads the retriever and the server's system prompt first.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

URL_FILE = Path("/tmp/llm_server_url")


def _probe_source():
    from assistant.types import Source

    return Source(n=1, paper_id="probe", title="probe", text="", score=0.0)


def pick_questions(n: int, kinds: list[str], split: str = "dev") -> list[dict]:
    by_kind = {k: [q for q in common.read_questions()
                   if q.get("kind") == k and q.get("gold") and q.get("split") == split] for k in kinds}
    picked: list[dict] = []
    while len(picked) < n and any(by_kind.values()):
        for k in kinds:
            if by_kind[k] and len(picked) < n:
                picked.append(by_kind[k].pop(0))
    return picked


def norm(title: str) -> str:
    return " ".join(title.lower().split())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10, help="questions (default 10)")
    ap.add_argument("--kinds", default="topic,fact,paraphrase,follow_up", help="question kinds, round-robin")
    ap.add_argument("--split", default="dev", help="question split (default dev: the one tuned on)")
    ap.add_argument("--base-url", default=None,
                    help=f"OpenAI-compatible endpoint (default: contents of {URL_FILE} if it exists, "
                         "else the embedded model is started)")
    ap.add_argument("--model", default=None, help="model name for the endpoint (default: the embedded one)")
    ap.add_argument("--store", type=Path, default=None, help="an existing store of the bundled corpus")
    ap.add_argument("--cache-dir", type=Path, default=None, help="PAPERS_CACHE_DIR (default: benchmark cache)")
    ap.add_argument("--show-answers", action="store_true", help="print each answer's text")
    ap.add_argument("--no-cache-bench", action="store_true",
                    help="skip the prompt-cache comparison (cached vs cache_prompt=false)")
    ap.add_argument("--no-process", action="store_true", help="skip the new-process measurement")
    ap.add_argument("--old-backend", metavar="PYTHON", default=None,
                    help="only compare backends: the same questions against the embedded xllamacpp "
                         "server and llama-cpp-python's llama_cpp.server run by PYTHON (a venv with "
                         "llama-cpp-python[server] installed), alternating, in one run")
    args = ap.parse_args(argv)

    from assistant.answer import Assistant
    from assistant.config import LOCAL_MODEL

    base_url = args.base_url
    if base_url is None and URL_FILE.exists():
        base_url = URL_FILE.read_text().strip() or None
    common.header("answers with the embedded model")
    store_settings = common.bundled_store(args.cache_dir, args.store)
    overrides = {"llm_base_url": base_url}
    if base_url:
        overrides.update(llm_model=args.model or LOCAL_MODEL)  # the embedded model's server
    elif args.model:
        overrides["llm_model"] = args.model
    settings = store_settings.model_copy(update=overrides)
    print(f"model: {settings.model_name} at {base_url or 'embedded server started by the Assistant'}")

    questions = pick_questions(args.n, [k.strip() for k in args.kinds.split(",") if k.strip()],
                               args.split)
    if args.old_backend:
        compare_backends(store_settings, questions, args.old_backend)
        common.footer()
        return 0
    with Assistant(settings) as assistant:
        warm = common.read_questions()[0]["question"]
        measure(assistant, {"question": warm, "gold": []}, probe=False)  # untimed warm-up
        rows = []
        for q in questions:
            row = measure(assistant, q)
            rows.append(row)
            print(f"  {q['id']}: evidence {row['evidence']:.2f} s, ttft {row['ttft']:.1f} s, "
                  f"total {row['total']:.1f} s, {row['papers']} papers, prompt {row['prompt']} tok",
                  file=sys.stderr, flush=True)
            if args.show_answers:
                print(f"\n[{q['id']}] {q['question']}\n{row['text']}\n", file=sys.stderr)
    report(rows)
    if not args.no_process:
        print()
        new_process(store_settings, questions)
    if not args.no_cache_bench:
        print()
        common.table(["request", "cached ttft s", "cold ttft s", "cold / cached",
                      "cached prompt tok"], cache_gain(settings, questions), digits=2)
    if base_url:
        print("note: the model server is shared; a request queued behind another engineer's shows as ttft.")
    common.footer()
    return 0


def measure(assistant, q: dict, probe: bool = True) -> dict:
    """One question through stream_events: when the evidence, the first model token and the
    answer arrived, after a 1-token probe request (the same run's baseline)."""
    from assistant.compose import messages
    from assistant.types import Answer, Retrieved, Source

    load_before = common.load()[0]
    probe_s = None
    if probe:
        system = messages("", (Source(1, "probe", "probe", "", 0.0),))[0]
        t0 = time.perf_counter()
        assistant.llm.complete([system, {"role": "user", "content": "Say OK."}], max_tokens=1)
        probe_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    evidence, answer = None, None
    for event in assistant.stream_events(q["question"], list(q.get("history", []))):
        if isinstance(event, Retrieved) and evidence is None:
            evidence = time.perf_counter() - t0
        elif isinstance(event, Answer):
            answer = event
    total = time.perf_counter() - t0
    gold = {norm(t) for t in q.get("gold", [])}
    cited = {norm(c.title) for c in answer.citations}
    return {"id": q.get("id", "warm-up"), "probe": probe_s, "evidence": evidence,
            "ttft": answer.timings.first_token_s if answer.timings.first_token_s is not None else total,
            "total": total, "papers": len(answer.sources), "prompt": answer.usage.prompt_tokens,
            "cached": answer.usage.cached_tokens, "answer_tok": answer.usage.completion_tokens,
            "gold": f"{len(gold & cited)}/{len(gold)}", "abstained": answer.abstained,
            "left_out": len(answer.left_out), "load": load_before, "text": answer.text}


def report(rows: list[dict]) -> None:
    print()
    common.table(["question", "probe s", "evidence s", "ttft s", "total s", "papers", "prompt tok",
                  "cached", "answer tok", "gold cited", "left out", "abstained", "load"],
                 [(r["id"], r["probe"], r["evidence"], r["ttft"], r["total"], r["papers"],
                   r["prompt"], r["cached"], r["answer_tok"], r["gold"], r["left_out"],
                   "yes" if r["abstained"] else "", f"{r['load']:.2f}") for r in rows], digits=2)
    med = lambda key, rs=rows: common.median([r[key] for r in rs if r[key] is not None])  # noqa: E731
    three = [r for r in rows if r["papers"] >= 3]
    probes = [r["probe"] for r in rows if r["probe"] is not None]
    print()
    common.table(["figure", "value", "goal", ""], [
        ("median first useful text: the evidence (s)", med("evidence"), "<= 2",
         common.goal(med("evidence") <= 2)),
        ("median first model token (s)", med("ttft"), "<= 4", common.goal(med("ttft") <= 4)),
        ("median total, all answers (s)", med("total"), "", ""),
        (f"median total, answers of 3+ papers ({len(three)}) (s)",
         med("total", three) if three else None, "<= 12",
         common.goal(med("total", three) <= 12) if three else ""),
        ("median prompt tokens / cached", f"{med('prompt'):.0f} / {med('cached'):.0f}", "", ""),
        ("median 1-token probe (s): server wait baseline", common.median(probes) if probes else None,
         "", ""),
        ("median ttft - probe (s): our prompt's own cost",
         common.median([r["ttft"] - r["probe"] for r in rows if r["probe"] is not None])
         if probes else None, "", ""),
    ], digits=2)


NEW_PROCESS = """
import sys, time
from pathlib import Path
from assistant.answer import Assistant
from assistant.config import Settings
a = Assistant(Settings(store_dir=Path(sys.argv[1]), cache_dir=Path(sys.argv[2])))
a.search(sys.argv[3])
print("retrieved", flush=True)
a.plan(sys.argv[3], [])
print("evidence", flush=True)
"""


def new_process(settings, questions: list[dict], rounds: int = 5) -> None:
    """`papers ask` as a new process: spawn to retrieval done (the evidence decided), against
    spawning `python -c pass`, alternating, in the same run."""
    import subprocess

    def spawn(code: str, *args: str) -> list[float]:
        """Seconds from spawning to each line the child prints (or to its exit)."""
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                                text=True)
        marks = [time.perf_counter() - t0 for _ in iter(proc.stdout.readline, "")]
        proc.wait()
        return marks or [time.perf_counter() - t0]

    ask, bare = [], []
    for i in range(rounds):
        q = questions[i % len(questions)]["question"]
        ask.append(spawn(NEW_PROCESS, str(settings.store_dir), str(settings.cache_dir), q))
        bare.append(spawn("pass")[0])
    retrieved = common.median([m[0] for m in ask])
    common.table(["figure", "median s", "goal", ""], [
        ("new process: spawn to retrieval done", retrieved, "<= 1", common.goal(retrieved <= 1)),
        ("new process: spawn to the evidence decided", common.median([m[1] for m in ask]), "", ""),
        ("baseline: spawn `python -c pass`", common.median(bare), "", ""),
        ("our own cost to retrieval (ask - baseline)", retrieved - common.median(bare), "", ""),
    ], digits=2)


def compare_backends(settings, questions: list[dict], old_python: str) -> None:
    """xllamacpp (the embedded default) against llama-cpp-python's server, in one run.

    Both servers load the same GGUF with 2 threads and a 4096-token window and stay up side by
    side (only the one asked works; an idle server costs no CPU), each keeping its own prompt
    cache. Each question goes to both, the order alternating per question, so drift in the
    machine's load falls on both alike. Requests are identical: same prompts, same grammar.
    """
    from assistant.answer import Assistant
    from assistant.config import LOCAL_MODEL
    from assistant.local_server import LocalServer
    from assistant.types import Answer

    class OldServer(LocalServer):
        def _command(self, model):
            s = self.settings
            return [old_python, "-m", "llama_cpp.server", "--model", str(model),
                    "--model_alias", LOCAL_MODEL, "--host", self.host, "--port", str(self.port),
                    "--n_threads", str(s.local_threads), "--n_ctx", str(s.local_ctx)]

        def _wait_ready(self):  # llama_cpp.server has no /health: ready when it lists models
            from assistant import local_server

            while not local_server._answers(self.host, self.port, "/v1/models"):
                if self._proc.poll() is not None or time.monotonic() - self._started_at > 300:
                    raise SystemExit(f"llama_cpp.server did not start; see {self.log_path}")
                time.sleep(0.2)
            self.start_seconds = time.monotonic() - self._started_at

    servers = {"xllamacpp": LocalServer(settings), "llama-cpp-python": OldServer(settings)}
    figures: dict[str, dict[str, list[float]]] = {name: {"ttft": [], "total": []} for name in servers}
    started = {}
    try:
        for name, server in servers.items():
            server.start()
            started[name] = server.start_seconds
        assistants = {name: Assistant(settings.model_copy(update={
            "llm_base_url": server.base_url, "llm_model": LOCAL_MODEL, "llm_grammar": True}))
            for name, server in servers.items()}
        for a in assistants.values():  # store, BM25, MiniLM and each server's system prompt
            next(e for e in a.stream_events(questions[0]["question"]) if isinstance(e, Answer))
        names = list(servers)
        for i, q in enumerate(questions):
            for name in (names if i % 2 == 0 else names[::-1]):
                t0 = time.perf_counter()
                answer = next(e for e in assistants[name].stream_events(q["question"])
                              if isinstance(e, Answer))
                total = time.perf_counter() - t0
                figures[name]["ttft"].append(answer.timings.first_token_s or total)
                figures[name]["total"].append(total)
                print(f"  {q['id']} {name}: ttft {figures[name]['ttft'][-1]:.1f} s, total {total:.1f} s, "
                      f"load {common.load()[0]:.2f}", file=sys.stderr, flush=True)
    finally:
        for server in servers.values():
            server.stop()
    new, old = figures["xllamacpp"], figures["llama-cpp-python"]
    rows = [(f"median {k} (s)", common.median(new[k]), common.median(old[k]),
             common.median(old[k]) / common.median(new[k])) for k in ("ttft", "total")]
    rows.append(("server start (s)", started.get("xllamacpp"), started.get("llama-cpp-python"), None))
    print()
    common.table(["figure", "xllamacpp", "llama-cpp-python", "old / new"], rows, digits=2)


def cache_gain(settings, questions: list[dict]) -> list[tuple]:
    """The prompt cache's gain, against a cold prompt in the same run: the same question
    answered with llama.cpp's prompt cache (as users get it: the system prompt with its worked
    examples is reused) and with `cache_prompt: false` (every token read anew)."""
    from assistant.answer import Assistant
    from assistant.llm import LLM
    from assistant.local_server import LocalServer
    from assistant.types import Answer

    def run(extra: dict, question: str) -> tuple[float, int]:
        llm = LLM(settings, extra_body=extra, server=server)
        with Assistant(settings, llm=llm) as a:
            a.search("warm up the retriever")  # store, BM25 and MiniLM loads: not timed
            answer = next(e for e in a.stream_events(question) if isinstance(e, Answer))
        return answer.timings.first_token_s or float("nan"), answer.usage.cached_tokens

    # One server for every run (started here unless a URL is set), so its cache carries over.
    server = LocalServer(settings) if settings.uses_local_model else None
    if server is not None:
        server.start()
    run({}, questions[0]["question"])  # a first question: the server is up, its cache warm
    rows = []
    for q in questions[1:3]:
        cached, cached_tokens = run({}, q["question"])
        cold, _ = run({"cache_prompt": False}, q["question"])
        rows.append((q["id"], cached, cold, cold / cached if cached else None, cached_tokens))
    if server is not None:
        server.stop()
    return rows


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
