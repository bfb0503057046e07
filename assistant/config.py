"""One Settings object. Every field can be set by an environment variable `PAPERS_<FIELD>`."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
from pydantic import Field, PrivateAttr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The embedded default chat model (llama.cpp server over the pinned GGUF parts).
LOCAL_MODEL = "qwen2.5-coder-1.5b-instruct"
# With an API key and no base URL we talk to OpenAI with a small, cheap model.
OPENAI_DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_LIBRARY = "papers"
LIBRARY_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # a folder name on every system
# Where the store was before libraries lived in the per-user data folder; a checkout's store/.
LEGACY_STORE = "store"


def check_library_name(name: str) -> str:
    """`name` when it can name a library folder, else a one-line PapersError."""
    import re

    from .errors import PapersError

    if not re.fullmatch(LIBRARY_NAME, name):
        raise PapersError(f"{name!r} is no library name: use letters, digits, '.', '_' or '-' "
                          "(at most 64, starting with a letter or digit)")
    return name


class Settings(BaseSettings):
    """Configuration for the whole pipeline; pass it explicitly, never read it from a global."""

    model_config = SettingsConfigDict(env_prefix="PAPERS_", extra="ignore", validate_default=True)

    # --- storage -------------------------------------------------------------------------------
    # One library from any folder: by default the store is data_dir/libraries/<library>, the
    # same wherever `papers` runs. A ./store holding a library (the old default, or a
    # development checkout's) is used in its folder instead, and the CLI says so.
    # `library` and `data_dir` are arguments of Settings() and variables PAPERS_LIBRARY and
    # PAPERS_DATA_DIR, not fields: the eval suite fingerprints every field that is not about
    # where things live, and they only decide store_dir (see __init__).
    store_dir: Path | None = Field(
        None, description="Folder of the embedded Chroma store (relative to the cwd); unset: the "
        "library's folder in the per-user data folder, or ./store where it holds a library.",
    )
    chroma_url: str | None = Field(
        None,
        description="URL of a Chroma server (`chroma run`, distributed or managed Chroma); "
        "when set, the store lives there instead of store_dir.",
    )
    chroma_token: str | None = Field(None, description="Auth token for a managed Chroma server.")
    collection: str = Field("papers", description="Chroma collection name.")
    # One writer at a time (writer.py): a second `papers ingest` waits this long for the first.
    # 10 minutes covers an ingest of a few thousand papers on 2 cores (~30 papers/s).
    writer_wait: float = Field(
        600.0, ge=0, description="Seconds a second `papers ingest` waits for the store's writer lock.")
    # A Chroma server's writer lease is renewed every third of this; a writer that stops renewing
    # (crashed, hung, cut off) loses it after this long and another writer takes it over.
    writer_lease: float = Field(
        60.0, gt=0, description="Seconds a writer's lease on a Chroma server lasts unless renewed.")
    cache_dir: Path = Field(
        Path(platformdirs.user_cache_dir("paper-assistant")),
        description="Where offline assets (encodings, embedding model, GGUF) are staged once.",
    )

    # --- chunking ------------------------------------------------------------------------------
    # MiniLM truncates at 256 word pieces. On these abstracts one cl100k token is ~0.96 word
    # pieces (measured on 200 bundled abstracts) and a title is ~20 pieces, so a 220-token chunk
    # plus its title is embedded whole. Abstracts are 100-400 tokens (median ~245): one or two
    # chunks each. 40 tokens of overlap keep a sentence cut at a boundary readable in both.
    chunk_size: int = Field(220, ge=32, description="Chunk size in tiktoken (cl100k) tokens.")
    chunk_overlap: int = Field(40, ge=0, description="Overlap between chunks, in tokens.")
    embed_batch_size: int = Field(32, ge=1, description="Texts per embedding-model call.")
    # --- embeddings from an endpoint (unset base URL: the in-process MiniLM above) --------------
    # Any OpenAI-compatible /v1/embeddings (Ollama, vLLM, llama.cpp, OpenAI). A store records
    # which embedder wrote it; another one is refused (store.py), never mixed.
    embed_base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint for embeddings; unset: in-process MiniLM.")
    embed_model: str | None = Field(None, description="Embedding model name sent to the endpoint.")
    embed_api_key: str | None = Field(None, description="API key of the embeddings endpoint.")
    # 4 requests in flight: a server batches concurrent requests (llama.cpp, vLLM) and a remote
    # one hides its round trip; more mostly queues on a small server.
    embed_concurrency: int = Field(4, ge=1, le=64, description="Embedding requests in flight.")
    # 5 attempts with backoff 0.5, 1, 2, 4 s: a restarting server or a rate limit gets ~7.5 s.
    embed_attempts: int = Field(5, ge=1, description="Tries per batch on 429/5xx/connection errors.")
    # 120 s as llm_timeout: a CPU llama.cpp server embeds ~30-90 tokens/s (a batch of 32 chunks
    # is ~8,000 tokens: lower PAPERS_EMBED_BATCH_SIZE there).
    embed_timeout: float = Field(120.0, gt=0, description="Seconds to wait for one embeddings response.")

    # --- retrieval -----------------------------------------------------------------------------
    # An answer considers this many retrieved papers: a "which papers" list cites up to 8 of them.
    k: int = Field(12, ge=1, le=100, description="Papers to retrieve for an answer or a search.")
    candidates: int = Field(50, ge=5, description="Chunks each retriever returns before fusion.")
    # HNSW search breadth. Chroma's default (100) returned different neighbours for the same
    # query in different processes (8 of 49 eval questions); 1000 is exact search below 1000
    # chunks and costs ~5 ms more per query at 100k chunks. Set when the collection is created.
    hnsw_ef_search: int = Field(1000, ge=10, description="HNSW ef_search of a new collection.")
    # Fusion chosen on the dev split (56 answerable questions; benchmarks/retrieval_bench.py
    # --grid over rrf_k, bm25_weight, bm25_coverage_power, title_weight, name_weight): dev
    # R@5 0.94, MRR 0.91, against 0.75 / 0.78 for the old RRF (k 60, weights 1/1, no boosts) and
    # 0.70 / 0.73 for plain BM25 over title + abstract. Weighting each BM25 rank by the square of
    # the query-term coverage did most of it (dev paraphrase MRR 0.22 -> 0.78): a paraphrase
    # shares no key term with its paper and its BM25 list is noise. Test figures: see
    # benchmarks/README.md.
    rrf_k: int = Field(30, ge=1, description="Reciprocal-rank-fusion constant.")
    dense_weight: float = Field(1.0, ge=0, description="Weight of dense ranks in the fusion.")
    bm25_weight: float = Field(1.0, ge=0, description="Weight of BM25 ranks in the fusion.")
    bm25_coverage_power: float = Field(
        2.0, ge=0, description="A BM25 rank counts times (query-term coverage of the paper) to this power."
    )
    # The title boost ties on dev (0.5: R@5 0.940 / MRR 0.911; 0: 0.937 / 0.915); kept for
    # queries that quote a title. The name boost puts a paper first when the query uses a name
    # or acronym it defines and at most name_max_papers papers mention ("USDM", "REFERS").
    title_weight: float = Field(
        0.5, ge=0, description="Weight of the boost for query terms found in a paper's title."
    )
    name_weight: float = Field(
        2.0, ge=0, description="Weight of the boost for a name or acronym the paper defines."
    )
    name_max_papers: int = Field(
        3, ge=1, description="A name mentioned by more papers than this is not used to boost."
    )
    # The relevance decision (assistant/relevance.py): answer when the query names a paper, or
    # the best hit reaches gate_similarity (cosine) or gate_coverage (IDF-weighted query-term
    # share), or it reaches gate_min_similarity and leads the next paper by gate_margin; unless
    # the question is a near miss. Calibrated on the dev split only (benchmarks/relevance_bench.py
    # --grid; figures in benchmarks/README.md). gate_similarity 0.46 on dev: false abstention
    # 2/56, abstain recall 9/13 with the gate alone; near misses are the missing-word rule's.
    gate_similarity: float = Field(0.46, description="Best-hit cosine similarity that alone means answerable.")
    gate_coverage: float = Field(0.40, description="Best-hit query-term coverage that alone means answerable.")
    gate_min_similarity: float = Field(
        0.34, description="Below this similarity only coverage or a defined name can mean answerable."
    )
    gate_margin: float = Field(
        0.03, ge=0, description="Lead of the best paper's similarity over the next that means answerable."
    )
    # Near misses: a question word that no top paper has and at most missing_df chunks of the
    # collection have ("Korean", "FP8", "legal"), in a question whose other words match
    # (coverage >= near_miss_coverage) and whose best paper is not very close in meaning
    # (dense < near_miss_dense). Paraphrases lack many words but match few: coverage < 0.20
    # for 24 of the 25 on dev. near_miss_dense was 0.62; 0.66 (2026-12-02, dev, with "wich" no
    # longer a missing word): near-miss abstain recall 0.59 -> 0.65 ("Which papers pre-train
    # speech recognition models for Arabic dialects?", 0.64, cited 8 speech papers), false
    # abstention unchanged at 0.14; every value from 0.65 to 0.76 scores the same on dev.
    missing_df: int = Field(2, ge=0, description="A question word in at most this many chunks can be 'missing'.")
    near_miss_coverage: float = Field(0.20, description="Coverage from which a missing word makes a near miss.")
    # A question word with a near synonym in the top papers is not missing ("photos" ~ "images"
    # 0.83). Chosen on the 50 questions of tests/data/search_questions.jsonl (written apart from
    # the eval, all answerable), whose false abstention was 0.22, every one a "near miss" on a
    # common word ("photos", "exam", "charger"): 0.16 for any value from 0.70 to 0.78, and dev
    # unchanged over that range (its near misses' words stay below 0.69: "dialects" ~
    # "accents"); 0.66 loses 2 of dev's near misses. Costs one MiniLM call over the top
    # papers' words (~0.3 s) when a question has a missing word.
    synonym_similarity: float = Field(
        0.74, description="MiniLM similarity to a word of the top papers from which a word is not missing.")
    near_miss_dense: float = Field(0.66, description="Similarity from which a missing word does not matter.")
    # Which papers a list question cites besides the best (relevance._answering): fused score
    # >= list_score_ratio x the best's and (coverage >= list_coverage_ratio x the best's, or
    # similarity >= the best's). benchmarks/relevance_bench.py --grid on dev (69 questions) chose
    # these with near_miss_coverage: FAR 0.04, abstain recall 0.85, precision 0.90, list recall
    # 0.61 (gate_coverage 0.35-0.45 and near_miss_dense 0.58-0.66 tie). On the 109 of dev now
    # (the 40 dev2-* written later, from papers no other question used) the grid's best,
    # near_miss_dense 0.58 and list_score_ratio 0.4, scores 1.61 against these values' 1.55
    # (FAR 0.13 vs 0.15, list recall 0.62 vs 0.61): within what 109 questions can tell apart,
    # so these stay. The thresholds are not what limits the decision; its features are.
    list_score_ratio: float = Field(0.5, ge=0, le=1, description="A listed paper's score, relative to the best.")
    list_coverage_ratio: float = Field(0.6, ge=0, description="A listed paper's coverage, relative to the best.")
    related_score_ratio: float = Field(
        0.6, ge=0, le=1, description="An uncited paper this close to the best (fused score) is shown as related."
    )

    # --- language model ------------------------------------------------------------------------
    llm_base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp server, ...)."
    )
    llm_model: str | None = Field(None, description="Model name sent to the endpoint.")
    llm_api_key: str | None = Field(
        None, description="API key; falls back to OPENAI_API_KEY when unset."
    )
    llm_timeout: float = Field(120.0, gt=0, description="Seconds to wait for a model response.")
    llm_max_retries: int = Field(2, ge=0, description="Retries on 429/5xx, with backoff.")
    llm_grammar: bool | None = Field(
        None, description="Send GBNF grammars that constrain the output (llama.cpp servers "
        "only); unset: on for the embedded model, off for other endpoints.",
    )
    show_unsupported: bool = Field(
        False, description="Show the direct answer's sentences the claim check does not support, "
        "marked '(unverified)' (default: left out, and counted).",
    )
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature.")
    seed: int | None = Field(0, description="Sampling seed, where the server supports one.")
    local_threads: int = Field(
        max(1, min(os.cpu_count() or 2, 8)), ge=1, description="CPU threads of the embedded model."
    )
    local_ctx: int = Field(4096, ge=512, description="Context size of the embedded model.")
    # One slot keeps the prompt cache simple: every request reuses the previous one's prefix (the
    # fixed system prompt, then the question). More slots serve concurrent clients side by side
    # (each slot holds local_ctx tokens of KV cache, ~110 MB at 4,096 for this model).
    local_parallel: int = Field(
        1, ge=1, le=16, description="Parallel request slots of the embedded model server."
    )
    local_start_timeout: float = Field(
        120.0, gt=0, description="Seconds to wait for the embedded model server to start."
    )

    _store_origin: str = PrivateAttr("explicit")
    _library: str = PrivateAttr(DEFAULT_LIBRARY)
    _data_dir: Path = PrivateAttr(Path())

    def __init__(self, library: str | None = None, data_dir: str | os.PathLike | None = None,
                 **values) -> None:
        super().__init__(**values)
        named = library or os.environ.get("PAPERS_LIBRARY") or None
        self._library = check_library_name(named or DEFAULT_LIBRARY)
        self._data_dir = Path(data_dir or os.environ.get("PAPERS_DATA_DIR")
                              or platformdirs.user_data_dir("paper-assistant"))
        self._locate_store(named is not None)

    def _locate_store(self, named: bool) -> None:
        """Fill store_dir when it is not set, remembering why (see `store_origin`)."""
        if self.chroma_url and named and "collection" not in self.model_fields_set:
            self.collection = self._library  # with a Chroma server a library is a collection
        if self.store_dir is not None:
            return
        legacy = Path.cwd() / LEGACY_STORE
        if not named and (legacy / "chroma.sqlite3").is_file():
            self.store_dir, self._store_origin = legacy, "cwd"
        else:
            self.store_dir = self._data_dir / "libraries" / self._library
            self._store_origin = "library"

    @property
    def library(self) -> str:
        """The library's name (PAPERS_LIBRARY, --library; default "papers")."""
        return self._library

    @property
    def data_dir(self) -> Path:
        """The per-user data folder (PAPERS_DATA_DIR; default: platformdirs' user data folder)."""
        return self._data_dir

    @property
    def store_origin(self) -> str:
        """Why the store is where it is: "explicit" (store_dir, PAPERS_STORE_DIR, --store),
        "library" (data_dir/libraries/<library>) or "cwd" (a ./store found in the working folder)."""
        return self._store_origin

    @model_validator(mode="after")
    def _fallback_key(self) -> "Settings":
        if self.llm_api_key is None and os.environ.get("OPENAI_API_KEY"):
            self.llm_api_key = os.environ["OPENAI_API_KEY"]
        return self

    @property
    def uses_local_model(self) -> bool:
        """No endpoint and no key: the embedded llama.cpp server runs."""
        return self.llm_base_url is None and not self.llm_api_key

    @property
    def uses_embed_endpoint(self) -> bool:
        """PAPERS_EMBED_BASE_URL set: embeddings come from that endpoint, not MiniLM."""
        return bool(self.embed_base_url)

    @property
    def model_name(self) -> str:
        if self.llm_model:
            return self.llm_model
        if self.uses_local_model:
            return LOCAL_MODEL
        return OPENAI_DEFAULT_MODEL if self.llm_base_url is None else "default"
