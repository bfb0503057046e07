"""End to end with the real embedded model: no cassette, no endpoint, no key (minutes on 2 cores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

STABILITY = "Efficient Continual Pre-training by Mitigating the Stability Gap"


@pytest.mark.slow
def test_papers_ask_with_the_embedded_model(bundled_store, real_model):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAPERS_", "OPENAI_"))}
    env.update(PAPERS_STORE_DIR=str(bundled_store.store_dir),
               PAPERS_CACHE_DIR=str(bundled_store.cache_dir))
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "ask", "Which papers study the stability gap?", "--json"],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout)
    assert answer["abstained"] is False
    assert STABILITY in [c["title"] for c in answer["citations"]]
    assert answer["model"] and answer["usage"]["prompt_tokens"] > 0
    assert answer["evidence"] and answer["evidence"][0]["quote"]  # what the paper says, quoted
    print(f"\nembedded model: first token {answer['timings']['first_token_s']:.1f} s, "
          f"total {answer['timings']['total_s']:.1f} s: {answer['answer'][:200]}")
