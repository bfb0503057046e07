"""relevance.assess: answer or abstain on the retrieval evidence; which papers to cite."""

from __future__ import annotations

import pytest

from assistant.answer import Assistant
from assistant.config import Settings
from assistant.relevance import assess, missing_words, question_kind
from assistant.retrieval import BM25Index
from assistant.types import Chunk, Hit

PAPERS = {
    "crisis": ("CrisisTransformers: Pre-trained language models for crisis-related social media texts",
               "Language models pre-trained on tweets about disasters, pandemics and emergencies."),
    "msg": ("2x Faster Language Model Pre-training via Masked Structural Growth",
            "We propose Masked Structural Growth (MSG), which grows operators by masking new neurons."),
    "gap": ("Efficient Continual Pre-training by Mitigating the Stability Gap",
            "Performance first drops when a model is continually pre-trained on a new domain."),
    "speech": ("Self-Supervised Speech Representations", "Pre-training on unlabeled audio for speech."),
}
SETTINGS = Settings()  # the calibrated defaults


@pytest.fixture(scope="module")
def bm25():
    chunks = [Chunk(f"{p}#0", p, t, x, 0, 1) for p, (t, x) in PAPERS.items()]
    return BM25Index.build(chunks, "g1")


def hits(bm25, sims: dict[str, float]) -> list[Hit]:
    """Hits in the given order with the given best cosine similarities."""
    return [Hit(rank=i, paper_id=p, title=PAPERS[p][0], score=1.0 / i, chunks=tuple(bm25.paper_chunks[p]),
                dense_similarity=s) for i, (p, s) in enumerate(sims.items(), start=1)]


def test_an_on_topic_paraphrase_is_answerable(bm25):
    # No key term of the paper, but MiniLM finds it (similarity as measured for such questions).
    query = "Is there anything specialized for reading microblog posts written during earthquakes?"
    a = assess(query, hits(bm25, {"crisis": 0.49, "speech": 0.30, "gap": 0.25}), bm25, SETTINGS)
    assert a.answerable and "dense" in a.reasons
    assert a.coverage < SETTINGS.gate_coverage
    assert [h.paper_id for h in a.cited] == ["crisis"]  # one paper: the best
    assert a.confidence > 0.5


def test_an_off_topic_question_abstains_and_offers_the_closest(bm25):
    query = "What is the recommended dose of ibuprofen for young children?"
    four = hits(bm25, {"gap": 0.13, "speech": 0.12, "crisis": 0.11, "msg": 0.10})
    a = assess(query, four, bm25, SETTINGS)
    assert not a.answerable and a.cited == [] and "dense" not in a.reasons
    assert [h.paper_id for h in a.closest] == ["gap", "speech", "crisis"]
    assert a.confidence < 0.5


def test_a_moderate_match_needs_a_lead_over_the_next_paper(bm25):
    query = "how do networks get larger while they train"
    clear = assess(query, hits(bm25, {"msg": 0.40, "gap": 0.30}), bm25, SETTINGS)
    assert clear.answerable and clear.reasons == ("margin",)
    # A near miss: several papers match a little, none stands out.
    vague = assess(query, hits(bm25, {"msg": 0.40, "gap": 0.395}), bm25, SETTINGS)
    assert not vague.answerable and vague.margin == pytest.approx(0.005)


def test_lexical_evidence_or_a_defined_name_is_enough(bm25):
    by_words = assess("stability gap of continual pre-training", hits(bm25, {"gap": 0.2}), bm25, SETTINGS)
    assert by_words.answerable and "coverage" in by_words.reasons
    by_name = assess("What does MSG do?", hits(bm25, {"msg": 0.2, "gap": 0.1}), bm25, SETTINGS)
    assert by_name.answerable and by_name.named and "named" in by_name.reasons
    assert [h.paper_id for h in by_name.cited] == ["msg"]


def test_no_hits_abstain(bm25):
    a = assess("anything", [], bm25, SETTINGS)
    assert not a.answerable and a.cited == [] and a.closest == [] and a.confidence == 0.0


@pytest.mark.parametrize("question, kind", [
    ("Which papers study the stability gap?", "list"),
    ("What work selects training examples to make pretraining cheaper?", "list"),
    ("Are there papers on test-time adaptation?", "list"),
    ("hey, is there anything here about teaching robots with videos?", "list"),
    ("papers on test time adaptaion without catastrophic forgeting?", "list"),
    ("hey so im looking for stuff on contrastive pretraining for medical images, anything?", "list"),
    ("I am looking for the paper that introduced TabPFN", "single"),
    ("How many GPU hours of training does Wuerstchen require?", "single"),
    ("What does AITQE do?", "single"),
    ("Which of them uses diffusion models?", "single"),
    ("Is there a spoken quiz helper for blind pupils?", "single"),
])
def test_list_questions_are_told_from_single_answer_ones(question, kind):
    assert question_kind(question) == kind


def test_a_list_cites_every_close_paper_a_single_question_one(bm25):
    both = {"gap": 0.45, "msg": 0.44, "crisis": 0.20}
    question = "pre-training on a new domain: performance drops"
    listed = assess(f"Which papers study {question}?", hits(bm25, both), bm25, SETTINGS)
    single = assess(f"How much does {question}?", hits(bm25, both), bm25, SETTINGS)
    assert listed.kind == "list" and single.kind == "single"
    assert [h.paper_id for h in single.cited] == ["gap"]
    assert "crisis" not in [h.paper_id for h in listed.cited]


def test_a_list_is_measured_against_its_best_paper_that_no_name_boosted(bm25):
    """dev topic-18: "CT" named one paper, whose boosted fused score put the other gold papers
    below half of it; the list is measured against the best paper closer in meaning."""
    sims = {"msg": 0.40, "gap": 0.60, "speech": 0.61, "crisis": 0.20}
    ranked = hits(bm25, sims)
    ranked[0] = Hit(rank=1, paper_id="msg", title=PAPERS["msg"][0], score=3.0,  # boosted by "MSG"
                    chunks=ranked[0].chunks, dense_similarity=0.40)
    question = "Which papers pre-train on a new domain or speech, such as MSG?"
    listed = assess(question, ranked, bm25, SETTINGS)
    assert listed.named and [h.paper_id for h in listed.cited][:3] == ["msg", "gap", "speech"]


def test_missing_words_are_specific_words_no_top_paper_has(bm25):
    texts = [f"{t}\n{x}" for t, x in PAPERS.values()]
    assert missing_words("Which papers continually pre-train a model for Korean?", texts, bm25, 2) \
        == ["Korean"]
    # misspellings of the papers' words, hyphenated known words and framing are not missing
    assert missing_words("hey, my supervisor asks: papers on pretrianed langauge modls?", texts,
                         bm25, 2) == []
    assert missing_words("crisis-related tweets about emergencies", texts, bm25, 2) == []
    # nor a mistyped word that asks ("wich"), nor "roughly"
    assert missing_words("wich papres roughly study Korean?", texts, bm25, 2) == ["Korean"]
    # nor an aspect or record word: "downsides", "wrote"; nor chat: "stuff", "list"
    assert missing_words("Who wrote about the downsides of crisis tweets?", texts, bm25, 2) == []
    assert missing_words("list all the stuff on crisis tweets", texts, bm25, 2) == []


def test_a_word_with_a_synonym_in_the_papers_is_not_missing(bm25):
    """tests/data/search_questions.jsonl: 11 of 50 answerable questions abstained as near misses
    on common words ("photos", "exam"); with MiniLM, a word close to one of the top papers'
    words is not missing. "Korean" is close to none of them."""
    from assistant.embeddings import make_embedding_function
    from assistant.similarity import Similarity

    similarity = Similarity(make_embedding_function(Settings()))
    texts = [f"{t}\n{x}" for t, x in PAPERS.values()]
    question = "Which language models are trained on Korean tweets about catastrophes?"
    assert missing_words(question, texts, bm25, 2) == ["Korean", "catastrophes"]
    assert missing_words(question, texts, bm25, 2, similarity, SETTINGS.synonym_similarity) \
        == ["Korean"]  # "catastrophes" ~ "disasters" (0.84)


def test_a_near_miss_abstains_on_its_missing_word(bm25):
    """Most words match the continual pre-training paper; "Korean" matches nothing."""
    question = "Which papers continually pre-train a model on a new domain in Korean?"
    a = assess(question, hits(bm25, {"gap": 0.5, "msg": 0.3}), bm25, SETTINGS)
    assert not a.answerable and a.missing == ("Korean",) and a.reasons == ("near miss",)
    assert a.coverage >= SETTINGS.near_miss_coverage


def test_assessment_is_deterministic(bm25):
    h = hits(bm25, {"crisis": 0.49, "speech": 0.30, "gap": 0.25})
    runs = {repr(assess("microblog posts during floods", h, bm25, SETTINGS)) for _ in range(3)}
    assert len(runs) == 1


# --------------------------------------------------------------------------- bundled collection

@pytest.fixture(scope="module")
def assistant(bundled_store):
    return Assistant(bundled_store)


@pytest.mark.parametrize("question", [
    "Which papers study the stability gap?",
    # dev paraphrases (evals/questions.jsonl): no key term of their paper
    "Is there anything specialized for reading microblog posts written during earthquakes, floods or epidemics?",
    "Can deaf people's hand gestures be rendered as ordinary written prose with no word-by-word "
    "transcription step?",
])
def test_bundled_answerable_questions_keep_their_paper(assistant, question):
    a = assistant.assess(question, assistant.search(question))
    assert a.answerable and a.cited[0].rank == 1


@pytest.mark.parametrize("question", [
    "how do I bake sourdough bread",
    "What is the recommended dose of ibuprofen for young children?",
    "Which cathode materials give lithium-ion batteries the longest cycle life?",
])
def test_bundled_off_topic_questions_abstain(assistant, question):
    hits = assistant.search(question)
    a = assistant.assess(question, hits)
    assert hits and not a.answerable and a.cited == [] and len(a.closest) == 3


def test_a_related_paper_is_close_in_score_and_in_meaning(bm25):
    query = "Is there anything specialized for reading microblog posts written during earthquakes?"
    three = hits(bm25, {"crisis": 0.49, "speech": 0.40, "gap": 0.25})
    three = [Hit(h.rank, h.paper_id, h.title, s, h.chunks, dense_similarity=h.dense_similarity)
             for h, s in zip(three, (1.0, 0.9, 0.9))]  # both neighbours close on the fused score
    a = assess(query, three, bm25, SETTINGS)
    assert [h.paper_id for h in a.cited] == ["crisis"]
    assert [h.paper_id for h in a.related] == ["speech"]  # "gap" (0.25) is far in meaning


def test_a_name_two_papers_define_cites_the_better_ranked_one_only():
    """"How was VPT trained to play Minecraft?": Video PreTraining defines VPT, and so does a
    point-cloud paper that spells out "visual prompt tuning (VPT)"; only the first is meant."""
    papers = {
        "vpt": ("Video PreTraining (VPT): Learning to Act by Watching Unlabeled Online Videos",
                "We train an inverse dynamics model on online videos of people playing Minecraft."),
        "idpt": ("Instance-aware Dynamic Prompt Tuning for Pre-trained Point Cloud Models",
                 "Inspired by visual prompt tuning (VPT), we explore prompt tuning on point clouds."),
        "gap": PAPERS["gap"],
    }
    index = BM25Index.build([Chunk(f"{p}#0", p, t, x, 0, 1) for p, (t, x) in papers.items()], "g2")
    sims = {"vpt": 0.6, "idpt": 0.3, "gap": 0.2}
    three = [Hit(rank=i, paper_id=p, title=papers[p][0], score=1.0 / i,
                 chunks=tuple(index.paper_chunks[p]), dense_similarity=s)
             for i, (p, s) in enumerate(sims.items(), 1)]
    a = assess("How was VPT trained to play Minecraft?", three, index, SETTINGS)
    assert a.named and [h.paper_id for h in a.cited] == ["vpt"]


def test_a_listed_paper_has_one_of_the_questions_rare_terms(bm25, monkeypatch):
    """A paper close on common words alone ("pre-trained", "language models") is not listed
    when the first paper has one of the question's rare terms ("tweets")."""
    import assistant.relevance as relevance

    query = "Which papers pre-train language models on tweets?"
    h = hits(bm25, {"crisis": 0.60, "gap": 0.50, "msg": 0.50})
    h = [Hit(x.rank, x.paper_id, x.title, s, x.chunks, dense_similarity=x.dense_similarity)
         for x, s in zip(h, (1.0, 0.9, 0.9))]
    monkeypatch.setattr(relevance, "LIST_RARE_SHARE", 0.3)  # 4 chunks: "tweets" is in 1, "language" in 2
    assert [x.paper_id for x in assess(query, h, bm25, SETTINGS).cited] == ["crisis"]
    monkeypatch.setattr(relevance, "LIST_RARE_SHARE", 0.0)  # no term is rare: the rule is off
    assert [x.paper_id for x in assess(query, h, bm25, SETTINGS).cited] == ["crisis", "msg"]
