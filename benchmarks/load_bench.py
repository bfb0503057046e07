"""Load: N `papers ask` clients against one `papers llm serve` with 2 slots, and a chat that keeps
answering while an ingest writes the same store (issue 17, item 6).

    .venv/bin/python benchmarks/load_bench.py                 # both parts, ~6-12 min on 2 cores
    .venv/bin/python benchmarks/load_bench.py --no-model      # part 2 without a model: retrieval only
    .venv/bin/python benchmarks/load_bench.py --base-url URL  # a running server instead of starting one

Part 1, clients (needs the embedded model: the `local` extra). Starts `papers llm serve --port P`
with PAPERS_LOCAL_PARALLEL=--slots (2), then
  baseline  one `papers ask` alone: wall seconds and seconds to its first byte of answer
  load      --clients (8) `papers ask` at once, each its own question: per client its exit status,
            wall and first-byte seconds, whether it said it waits in the server's queue, and its
            error line if any; the server's memory (RSS of `papers llm serve` and its llama.cpp
            child, from /proc) sampled every 0.2 s: after start, peak under load, after the load
Prints answered / queued with the message / failed / tracebacks, p50 and max of wall and first
byte with their ratio to the baseline, and the RSS figures (bounded: llama.cpp allocates every
slot's KV cache at start, so the peak should stay within a few % of the idle size).

Part 2, chat during an ingest. On a scratch copy of the bundled store, --questions questions go
through `Assistant.stream_events` (what `papers chat` runs, one conversation, store kept open):
seconds to the retrieved papers (what the chat shows first) and to the final answer. First with
the store idle (the baseline), then while `papers ingest` writes --papers synthetic papers into the
same store from another process (it embeds with the real model: both compete for the 2 cores).
Prints p50 / max of both, the ratios to idle, errors met (goal: none), how far the ingest got
meanwhile, and `papers check` on the store afterwards. With --no-model only the retrieval side
(`Assistant.search`) is timed, and part 1 is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

QUEUE_WORDS = "your question waits in its queue"


def papers_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from assistant.cli import main; main()", *args]


def env_for(store: Path, cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERS_")}
    env.update(PAPERS_STORE_DIR=str(store), PAPERS_CACHE_DIR=str(cache), **extra)
    return env


def questions(n: int) -> list[str]:
    rows = [q for q in common.read_questions() if q.get("gold") and not q.get("history")]
    random.Random(17).shuffle(rows)
    return [rows[i % len(rows)]["question"] for i in range(n)]


# --- memory of a process tree ------------------------------------------------------------------
def tree_rss_mb(root: int) -> float:
    """RSS of `root` and its descendants, from /proc (Linux)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += [p for p, parent in parents.items() if parent == pid and p not in tree]
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class Sampler(threading.Thread):
    """Peak RSS of a process tree, sampled every 0.2 s until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self._halt = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.2):
            self.peak = max(self.peak, tree_rss_mb(self.pid))

    def stop(self) -> float:
        self._halt.set()
        self.join()
        return self.peak


# --- part 1 ------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(cache: Path, slots: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(papers_cmd("llm", "serve", "--port", str(port)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env=env_for(cache / "no-store", cache, PAPERS_LOCAL_PARALLEL=str(slots)))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # the first start assembles the 1.1 GB GGUF (~10 s)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("papers llm serve exited:\n" + proc.stdout.read())
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return proc, url + "/v1"
        except OSError:
            time.sleep(0.5)
    proc.kill()
    sys.exit("papers llm serve did not answer /health within 600 s")


def ask(question: str, store: Path, cache: Path, url: str) -> dict:
    """One `papers ask` as a process: wall, first byte of answer, queue message, error line."""
    start = time.perf_counter()
    proc = subprocess.Popen(papers_cmd("ask", question), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env_for(store, cache, PAPERS_LLM_BASE_URL=url))
    first = None
    out = b""
    while chunk := proc.stdout.read1(4096):
        first = first or time.perf_counter() - start
        out += chunk
    err = proc.stderr.read().decode(errors="replace")
    code = proc.wait()
    errors = [line for line in err.splitlines() if line.startswith("Error")]
    return {"code": code, "wall": time.perf_counter() - start, "first": first, "queued": QUEUE_WORDS in err,
            "error": errors[0] if errors else None, "traceback": "Traceback" in err, "answer": out}


def part1(args, store: Path, cache: Path) -> None:
    print("## 1. clients against one `papers llm serve`")
    server, url = (None, args.base_url) if args.base_url else start_server(cache, args.slots)
    try:
        idle = tree_rss_mb(server.pid) if server else float("nan")
        qs = questions(args.clients + 1)
        base = ask(qs[0], store, cache, url)
        sampler = Sampler(server.pid) if server else None
        if sampler:
            sampler.start()
        results: list[dict] = [None] * args.clients  # type: ignore[list-item]

        def run(i: int) -> None:
            results[i] = ask(qs[i + 1], store, cache, url)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
            time.sleep(args.stagger)  # all at once, every client looks at /slots before any asks
        for t in threads:
            t.join()
        span = time.perf_counter() - t0
        peak = sampler.stop() if sampler else float("nan")
        after = tree_rss_mb(server.pid) if server else float("nan")
        slots = f"{args.slots} slots" if server else "a running server"
        print(f"server: {url} ({slots}); baseline: one client alone: wall {base['wall']:.1f} s, first byte "
              f"{common.fmt(base['first'], 1)} s, exit {base['code']}")
        common.table(["client", "exit", "wall s", "first byte s", "said it waits", "error"],
                     [[i + 1, r["code"], r["wall"], r["first"], "yes" if r["queued"] else "no",
                       (r["error"] or "")[:70]] for i, r in enumerate(results)], digits=1)
        walls = [r["wall"] for r in results]
        firsts = [r["first"] for r in results if r["first"] is not None]
        answered = sum(r["code"] == 0 and bool(r["answer"].strip()) for r in results)
        print(f"answered {answered}/{args.clients}; said they wait in the queue: "
              f"{sum(r['queued'] for r in results)}; failed: {sum(r['code'] != 0 for r in results)}; "
              f"tracebacks: {sum(r['traceback'] for r in results)}; all {args.clients} done in {span:.1f} s")
        print(f"wall p50 {common.median(walls):.1f} s, max {max(walls):.1f} s "
              f"({common.median(walls) / base['wall']:.1f}x / {max(walls) / base['wall']:.1f}x the baseline)")
        if firsts and base["first"]:
            print(f"first byte p50 {common.median(firsts):.1f} s, max {max(firsts):.1f} s "
                  f"({max(firsts) / base['first']:.1f}x the baseline's at most)")
        print(f"server RSS: {idle:.0f} MB after start and one answer, peak {peak:.0f} MB under load, "
              f"{after:.0f} MB after ({(peak / idle - 1) * 100 if idle == idle else float('nan'):+.1f}% at peak)")
        print()
    finally:
        if server:
            server.terminate()
            server.wait(30)


# --- part 2 ------------------------------------------------------------------------------------
def synthetic_file(path: Path, n: int) -> Path:
    words = ("graph kernel sparse latent token robust causal convex policy reward signal spectral "
             "manifold protein molecule speech audio image video lidar radar satellite").split()
    rng = random.Random(5)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            a, b, c, d = rng.sample(words, 4)
            abstract = (f"We study {a} {b} methods for {c} data in load paper {i}. Our {d} approach "
                        f"improves accuracy on benchmarks, and an analysis explains when {b} helps. " * 2)
            fh.write(json.dumps({"title": f"Load study {i}: {a} {b} for {c}", "abstract": abstract}) + "\n")
    return path


def chat_round(assistant, qs: list[str], model: bool) -> tuple[list[float], list[float], list[str]]:
    """Seconds to the retrieved papers and to the answer per question, and the errors met."""
    from assistant.errors import user_message
    from assistant.types import Answer, Retrieved

    to_papers, to_answer, errors = [], [], []
    for q in qs:
        start = time.perf_counter()
        try:
            if not model:
                assistant.search(q, k=5)
                to_papers.append(time.perf_counter() - start)
                continue
            for event in assistant.stream_events(q):
                if isinstance(event, Retrieved):
                    to_papers.append(time.perf_counter() - start)
                elif isinstance(event, Answer):
                    to_answer.append(time.perf_counter() - start)
        except Exception as exc:  # what the chat would show as "error: ..."
            errors.append(user_message(exc) or f"{type(exc).__name__}: {exc}")
    return to_papers, to_answer, errors


def part2(args, cache: Path, url: str | None) -> None:
    from assistant.answer import Assistant

    print("## 2. a chat while an ingest writes the same store")
    scratch = common.scratch_dir("load")
    store = scratch / "store"
    shutil.copytree(common.bundled_store(cache).store_dir, store)
    settings = common.make_settings(store, cache, llm_base_url=url)
    qs = questions(args.questions)
    model = url is not None
    assistant = Assistant(settings)
    assistant.search("warm up", k=1)
    idle_papers, idle_answers, idle_errors = chat_round(assistant, qs, model)
    source = synthetic_file(scratch / "load.jsonl", args.papers)
    ingest = subprocess.Popen(papers_cmd("ingest", str(source)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env_for(store, cache))
    time.sleep(2)  # past reading: the ingest is embedding and writing
    busy_papers, busy_answers, busy_errors = [], [], []
    rounds = 0
    while ingest.poll() is None and rounds < args.rounds:
        p, a, e = chat_round(assistant, qs, model)
        busy_papers += p
        busy_answers += a
        busy_errors += e
        rounds += 1
    overlapped = ingest.poll() is None
    out, err = ingest.communicate()
    check = subprocess.run(papers_cmd("check"), capture_output=True, text=True, env=env_for(store, cache))
    print(f"store: copy of the bundled store + {args.papers} synthetic papers written by `papers ingest` "
          f"(exit {ingest.returncode}); {len(qs)} questions a round, {rounds} rounds during the ingest"
          f"{'' if overlapped else ' (the ingest finished before the last round)'}")
    rows = [["to retrieved papers (idle)", common.median(idle_papers), max(idle_papers, default=float("nan")), 1.0]]
    rows.append(["to retrieved papers (ingest)", common.median(busy_papers), max(busy_papers, default=float("nan")),
                 common.median(busy_papers) / common.median(idle_papers)])
    if model:
        rows.append(["to the answer (idle)", common.median(idle_answers), max(idle_answers, default=float("nan")), 1.0])
        rows.append(["to the answer (ingest)", common.median(busy_answers), max(busy_answers, default=float("nan")),
                     common.median(busy_answers) / common.median(idle_answers)])
    common.table(["seconds", "p50", "max", "p50 / idle"], rows, digits=3)
    print(f"errors met: idle {len(idle_errors)}, during the ingest {len(busy_errors)}"
          + (f" (first: {busy_errors[0]})" if busy_errors else ""))
    print(f"ingest: {out.strip().splitlines()[-1] if out.strip() else err.strip()[-200:]}")
    print(f"papers check afterwards: {(check.stdout or check.stderr).strip()}")
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--stagger", type=float, default=1.0,
                        help="seconds between client starts (0: all at once; then none sees a busy slot)")
    parser.add_argument("--no-chat", action="store_true", help="part 1 only")
    parser.add_argument("--base-url", default=None, help="a running OpenAI-compatible server (no start)")
    parser.add_argument("--no-model", action="store_true", help="part 2 only, retrieval only")
    parser.add_argument("--questions", type=int, default=6, help="questions a chat round (part 2)")
    parser.add_argument("--rounds", type=int, default=3, help="most chat rounds during the ingest")
    parser.add_argument("--papers", type=int, default=1500, help="papers the concurrent ingest writes")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    cache = args.cache_dir or common.default_cache_dir()
    common.header("load_bench: many clients, one model server; a chat during an ingest")
    url = None
    if not args.no_model:
        store = common.bundled_store(cache).store_dir
        part1(args, store, cache)
        if args.no_chat:
            pass
        elif args.base_url is None:  # part 2 needs a server too: start one for it
            server, url = start_server(cache, args.slots)
            try:
                part2(args, cache, url)
            finally:
                server.terminate()
                server.wait(30)
        else:
            part2(args, cache, args.base_url)
    else:
        part2(args, cache, None)
    common.footer()


if __name__ == "__main__":
    main()
