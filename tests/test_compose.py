"""How the direct answer's request names a paper (compose.short_name): the paper's own name or
none, never an acronym it only uses."""

from __future__ import annotations

from assistant.compose import short_name

ITTA = ("Improved Test-Time Adaptation for Domain Generalization",
        "The main challenge in domain generalization (DG) is to handle the distribution shift. "
        "Recent studies suggest that test-time training (TTT) might be a promising solution. "
        "This work addresses those two factors by proposing an Improved Test-Time Adaptation "
        "(ITTA) method. ITTA could achieve superior performance on several DG benchmarks.")
VLM = ("Active Prompt Learning in Vision Language Models",
       "Pre-trained Vision Language Models (VLMs) have demonstrated notable progress. We study "
       "how active learning can pick the samples to label for prompt learning.")


def rare(_name: str) -> int:
    return 1  # every name is used by one chunk of the collection


def test_the_paper_coins_the_name_it_is_called_by():
    assert short_name(*ITTA, rare) == "ITTA"


def test_an_acronym_the_paper_only_uses_is_not_its_name():
    assert short_name(*VLM, rare) == ""


def test_a_short_title_prefix_is_the_name():
    assert short_name("CAFA: Class-Aware Feature Alignment for Test-Time Adaptation",
                      "We propose a feature alignment loss.", rare) == "CAFA"


def test_a_name_many_papers_use_is_not_a_name():
    assert short_name(*ITTA, lambda name: 5) == ""


def test_a_shown_quote_undoes_latex_escapes_and_the_evidence_block_uses_it():
    from assistant.answer_text import evidence_lines, readable
    from assistant.types import Source

    quote = r"DiffTPT improves the zero-shot accuracy by 5.13\% over a continual approach~(CoTTA)."
    assert readable(quote) == ("DiffTPT improves the zero-shot accuracy by 5.13% over a continual "
                               "approach (CoTTA).")
    assert readable("a~b and 100%") == "a~b and 100%"  # only an escape or a tie before "("
    assert evidence_lines([Source(1, "p", "T", quote, 0.9, 2023)]) == [
        f'[1] T (2023): "{readable(quote)}"']
