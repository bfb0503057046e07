"""The embedded model server's child process: llama.cpp's own C++ server from the xllamacpp wheel.

    python -m assistant.llama_child --model FILE --host 127.0.0.1 --port P --threads 2 \
        --ctx 4096 --alias NAME [--parallel 1] [--embedding]

`--embedding` serves /v1/embeddings (mean-pooled) instead of chat: an embeddings endpoint from the
same wheel (tests, benchmarks/embed_bench.py; any GGUF works, the chat model's vectors are only
meant for those).

The API key, if any, comes from the environment variable PAPERS_SERVE_API_KEY (never argv, which
`ps` shows to every user). `xllamacpp.Server(params)` loads the model and starts listening in
background threads; this process then only waits for SIGTERM/SIGINT and exits at once (the OS
frees the model; there is nothing to flush).

Why a child process and not the server in our own process: on 2 busy cores an in-process
`xllamacpp.Server` was ready in 5.9 s at 1.9 GB RSS, a child in 4.2 s at the same size (one
measurement each, 2026-11-23), so start-up and memory do not decide it. What does (reasoned, not
benchmarked): a child
- is isolated: an abort inside llama.cpp (a bad GGUF, an allocation failure) cannot take the
  chat down with it, and we report its log line instead;
- stops at once on Ctrl-C: the C++ server's threads ignore Python's KeyboardInterrupt, so an
  in-process server keeps its threads busy until the current request ends;
- frees its 1.9 GB when stopped, which an in-process server does only at interpreter exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

API_KEY_ENV = "PAPERS_SERVE_API_KEY"


def _params(args: argparse.Namespace):
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = args.model
    p.cpuparams.n_threads = args.threads
    p.cpuparams_batch.n_threads = args.threads
    p.hostnames = [args.host]
    p.port = args.port
    p.model_alias = {args.alias}
    # One slot per parallel request; each gets the whole context (n_ctx is per slot once
    # kv_unified is off, which is the default), so a 4,096-token prompt fits in every slot.
    p.n_parallel = args.parallel
    p.n_ctx = args.ctx * args.parallel
    # HTTP threads: llama.cpp's default is max(slots + 2, cores - 1), 4 on 2 cores with 2 slots;
    # an 8th client's connection then waits unanswered in the accept queue, and so does the
    # `/slots` look that tells a client it is queued. Idle threads cost only their stacks.
    p.n_threads_http = 4 * args.parallel + 8
    p.cache_prompt = True  # the fixed system prefix and the question are not recomputed
    if args.embedding:
        p.embedding = True
        p.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
    key = os.environ.get(API_KEY_ENV)
    if key:
        p.api_keys = [key]
    return p


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant.llama_child")
    parser.add_argument("--model", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--alias", required=True)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--embedding", action="store_true")
    args = parser.parse_args(argv)

    import xllamacpp

    stop = lambda signum, frame: os._exit(0)  # noqa: E731 - nothing to flush: the OS frees all
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server = xllamacpp.Server(_params(args))  # returns once the model is loaded, listening
    except RuntimeError as err:  # a bad GGUF, a port in use: the log above says which
        print(f"llama_child: {err}", file=sys.stderr, flush=True)
        return 1
    print(f"llama_child: listening at {server.listening_address}", flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
