"""End-to-end answers with the embedded model: time to first token, total, prompt size, citations.

    .venv/bin/python benchmarks/answer_bench.py               # 10 questions, ~3-6 min on 2 cores
    .venv/bin/python benchmarks/answer_bench.py --n 4 --kinds fact

The model: PAPERS_LLM_BASE_URL taken from /tmp/llm_server_url when that file exists (a running
`papers llm serve`, i.e. the embedded Qwen2.5-Coder-1.5B), else --base-url, else the Assistant
starts the embedded model itself (first question then includes its start; stage the GGUF with
--cache-dir pointing at a cache that holds it, or it is copied into the benchmark cache).

Questions: answerable ones of evals/questions.jsonl with gold titles (no history), taken round-
robin over --kinds. Per question, through `Assistant.stream_events` (what `papers ask` runs):
  ttft      seconds from the call to the first model token (retrieval + first line's prefill)
                                                                                    [median <= 5 s]
  total     seconds to the final Answer (one line per relevant source, <= 3)        [median <= 12 s]
  prompt    prompt tokens of all the answer's requests, as the server reports them; `cached` =
            those its prompt cache reused (the fixed system prompt, then the question)
  recall    gold papers cited / gold papers; `in hits` = gold papers among the k retrieved papers,
            `shown` = among the sources the model was given after Assistant.relevant's gate
            (a retrieval miss, a gate/selection miss, or a model miss)
  probe     a 1-token request (system prompt + "Say OK.") timed just before each question: the
            baseline of the same run (server queue + minimal prefill); a shared server busy with someone else's
            requests shows up here, and ttft - probe estimates the cost of our own prompt
The store is the shared benchmark store of the bundled corpus (built once by ingest). One
untimed warm-up search loads the retriever first, so ttft holds no model/index load.
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


def pick_questions(n: int, kinds: list[str]) -> list[dict]:
    by_kind = {k: [q for q in common.read_questions()
                   if q.get("kind") == k and q.get("gold") and not q.get("history")] for k in kinds}
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
    ap.add_argument("--kinds", default="topic,fact,paraphrase", help="question kinds, round-robin")
    ap.add_argument("--base-url", default=None,
                    help=f"OpenAI-compatible endpoint (default: contents of {URL_FILE} if it exists, "
                         "else the embedded model is started)")
    ap.add_argument("--model", default=None, help="model name for the endpoint (default: the embedded one)")
    ap.add_argument("--store", type=Path, default=None, help="an existing store of the bundled corpus")
    ap.add_argument("--cache-dir", type=Path, default=None, help="PAPERS_CACHE_DIR (default: benchmark cache)")
    ap.add_argument("--show-answers", action="store_true", help="print each answer's text")
    ap.add_argument("--no-cache-bench", action="store_true",
                    help="skip the prompt-cache comparison (cached vs cache_prompt=false)")
    ap.add_argument("--old-backend", metavar="PYTHON", default=None,
                    help="only compare backends: the same questions against the embedded xllamacpp "
                         "server and llama-cpp-python's llama_cpp.server run by PYTHON (a venv with "
                         "llama-cpp-python[server] installed), alternating, in one run")
    ap.add_argument("--no-probe", action="store_true",
                    help="skip the 1-token request timed before each question (the server-wait baseline)")
    args = ap.parse_args(argv)

    from assistant.answer import Assistant
    from assistant.compose import messages
    from assistant.config import LOCAL_MODEL
    from assistant.types import Answer, Retrieved

    base_url = args.base_url
    if base_url is None and URL_FILE.exists():
        base_url = URL_FILE.read_text().strip() or None
    common.header("answers with the embedded model")
    store_settings = common.bundled_store(args.cache_dir, args.store)
    overrides = {"llm_base_url": base_url}
    if base_url:
        # The server behind the URL file is the embedded model: same name and 4096-token window.
        overrides.update(llm_model=args.model or LOCAL_MODEL, context_window=store_settings.local_ctx)
    elif args.model:
        overrides["llm_model"] = args.model
    settings = store_settings.model_copy(update=overrides)
    print(f"model: {settings.model_name} at {base_url or 'embedded server started by the Assistant'}")

    questions = pick_questions(args.n, [k.strip() for k in args.kinds.split(",") if k.strip()])
    if args.old_backend:
        compare_backends(store_settings, questions, args.old_backend)
        common.footer()
        return 0
    rows, ttfts, totals, prompts, recalls, probes = [], [], [], [], [], []
    with Assistant(settings) as assistant:
        assistant.search("warm up the retriever")  # store, BM25 and MiniLM loads, not timed below
        for q in questions:
            load_before = common.load()[0]
            probe = None
            if not args.no_probe:  # baseline in the same run: a 1-token request (queue wait + tiny prefill)
                t0 = time.perf_counter()
                # Same system prompt as the answers, so llama.cpp's prefix reuse is not disturbed.
                system = messages("", _probe_source())[0]
                assistant.llm.complete([system, {"role": "user", "content": "Say OK."}], max_tokens=1)
                probe = time.perf_counter() - t0
                probes.append(probe)
            t0 = time.perf_counter()
            answer, retrieved, first = None, None, None
            for event in assistant.stream_events(q["question"]):
                if isinstance(event, Retrieved):
                    retrieved = event
                elif isinstance(event, Answer):
                    answer = event
                elif first is None:
                    first = time.perf_counter() - t0
            total = time.perf_counter() - t0
            gold = {norm(t) for t in q["gold"]}
            cited = {norm(c.title) for c in answer.citations}
            shown = {norm(s.title) for s in (retrieved.sources if retrieved else ())}
            found = {norm(h.title) for h in (retrieved.hits if retrieved else ())}
            recall = len(gold & cited) / len(gold)
            ttft = answer.timings.first_token_s if answer.timings.first_token_s is not None else first
            ttfts.append(ttft if ttft is not None else total)
            totals.append(total)
            prompts.append(answer.usage.prompt_tokens)
            recalls.append(recall)
            rows.append((q["id"], probe, ttft, total, retrieved.retrieval_s if retrieved else None,
                         answer.usage.prompt_tokens, answer.usage.cached_tokens,
                         answer.usage.completion_tokens, len(shown),
                         f"{len(gold & found)}/{len(gold)}", f"{len(gold & shown)}/{len(gold)}", f"{len(gold & cited)}/{len(gold)}", recall,
                         "yes" if answer.abstained else "", f"{load_before:.2f}"))
            print(f"  {q['id']}: ttft {ttft if ttft is not None else float('nan'):.1f} s, total {total:.1f} s, "
                  f"prompt {answer.usage.prompt_tokens} tok, cited {len(gold & cited)}/{len(gold)} gold",
                  file=sys.stderr, flush=True)
            if args.show_answers:
                print(f"\n[{q['id']}] {q['question']}\n{answer.text}\n", file=sys.stderr)

    print()
    common.table(["question", "probe s", "ttft s", "total s", "retrieval s", "prompt tok", "cached",
                  "answer tok", "sources",
                  "gold in hits", "gold shown", "gold cited", "recall", "abstained", "load"], rows, digits=2)
    med_ttft, med_total, med_prompt = common.median(ttfts), common.median(totals), common.median(prompts)
    mean_recall = sum(recalls) / len(recalls) if recalls else float("nan")
    print()
    common.table(["figure", "value", "goal", ""], [
        ("median time to first token (s)", med_ttft, "<= 5", common.goal(med_ttft <= 5)),
        ("median total (s)", med_total, "<= 12", common.goal(med_total <= 12)),
        ("median prompt tokens (all lines)", med_prompt, "", ""),
        ("citation recall (gold cited / gold), mean", mean_recall, "", ""),
        ("p95-ish: max ttft / max total (s)", f"{max(ttfts):.1f} / {max(totals):.1f}", "", ""),
        ("median 1-token probe (s): server wait baseline", common.median(probes) if probes else None, "", ""),
        ("median ttft - probe (s): our prompt's own cost",
         common.median([t - p for t, p in zip(ttfts, probes)]) if probes else None, "", ""),
        ("abstained (answerable questions)", f"{sum(1 for r in rows if r[-2])}/{len(rows)}", "", ""),
    ], digits=2)
    if not args.no_cache_bench:
        print()
        cache_rows = cache_gain(settings, questions)
        common.table(["request", "cached ttft s", "cold ttft s", "cold / cached",
                      "cached prompt tok"], cache_rows, digits=2)
    if base_url:
        print("note: the model server is shared; a request queued behind another engineer's shows as ttft.")
    common.footer()


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
            "llm_base_url": server.base_url, "llm_model": LOCAL_MODEL, "llm_grammar": True,
            "context_window": settings.local_ctx})) for name, server in servers.items()}
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
    """The prompt cache's gain, against a cold prompt in the same run.

    The same question is answered twice on one server: with llama.cpp's prompt cache (as users
    get it: the system prompt, and the question for every line after the first, are reused) and
    with `cache_prompt: false` (every token read anew). Then a follow-up of the first question
    (condense + lines), both ways. First-token times of each request kind are compared.
    """
    from assistant.answer import Assistant
    from assistant.llm import LLM
    from assistant.local_server import LocalServer
    from assistant.types import Answer, Turn

    def run(extra: dict, question: str, history=()) -> tuple[float, int]:
        llm = LLM(settings, extra_body=extra, server=server)
        with Assistant(settings, llm=llm) as a:
            a.search("warm up the retriever")  # store, BM25 and MiniLM loads: not timed
            answer = next(e for e in a.stream_events(question, [Turn(h) for h in history])
                          if isinstance(e, Answer))
        return answer.timings.first_token_s or float("nan"), answer.usage.cached_tokens

    # One server for every run (started here unless a URL is set), so its cache carries over.
    server = LocalServer(settings) if settings.uses_local_model else None
    if server is not None:
        server.start()
    run({}, questions[0]["question"])  # a first question: the server is up, its cache warm
    cases = [("second question", questions[1]["question"], ()),
             ("follow-up", "What do they report?", (questions[0]["question"],))]
    rows = []
    for name, question, history in cases:
        cached, cached_tokens = run({}, question, history)
        cold, _ = run({"cache_prompt": False}, question, history)
        rows.append((name, cached, cold, cold / cached if cached else None, cached_tokens))
    if server is not None:
        server.stop()
    return rows
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
