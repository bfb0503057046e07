"""support: the run-time claim check's word rules (echo, pinned question words), no model."""

from __future__ import annotations

from assistant.answer_text import fallback_lead
from assistant.support import absent, is_echo, pinned_words, repeats, unmentioned
from assistant.types import Source

DEAF = "Can deaf people's hand gestures be rendered as ordinary written prose with no word-by-word transcription step?"
BLIND_TITLE = "Development of an NLP-driven computer-based test guide for visually impaired students"
BLIND_QUOTE = ("Hence, in this paper, we present an NLP-driven Computer-Based Test guide for visually "
               "impaired students. We validated the model with voice recordings obtained from 20 VIS.")


def test_the_questions_words_said_of_a_paper_whose_quote_lacks_them_are_pinned():
    """dev para-23: the model pinned the question onto a paper about audio tests for blind students."""
    sentence = ("Yes, the NLP-driven Computer-Based Test guide for visually impaired students can render "
                "deaf people's hand gestures as ordinary written prose with no word-by-word transcription step.")
    pinned = pinned_words(sentence, DEAF, f"{BLIND_QUOTE} {BLIND_TITLE}", [BLIND_TITLE])
    assert {"deaf", "gesture", "hand", "prose"} <= set(pinned)


def test_a_finding_from_the_quote_is_not_pinned_though_it_uses_the_questions_words():
    question = "What word error rate does wav2vec 2.0 reach on the nov92 test set?"
    quote = "Our model achieves 2.43% WER on the nov92 test set with a language model."
    sentence = "Wav2vec achieves a word error rate of 2.43% on the nov92 test set."
    assert pinned_words(sentence, question, quote, ["wav2vec 2.0"]) == []  # "WER" spells it out
    sentence = "It cuts the training data needed for speech generation by more than 10x."
    question = "Does Pheme reduce the data needed to train conversational speech generation?"
    quote = "Pheme cuts the training data needed for speech generation by more than 10x."
    assert pinned_words(sentence, question, quote, ["Pheme"]) == []


def test_yes_and_the_question_again_is_an_echo():
    question = "Can movements of four-legged creatures be synthesized from written prompts?"
    assert is_echo("Yes, movements of four-legged creatures can be synthesized from written prompts [1].",
                   question)
    assert not is_echo("OmniMotionGPT synthesizes them from 3 motion captures per species [1].", question)


def test_a_paper_the_model_could_only_pin_the_question_on_is_offered_as_the_closest():
    """When every sentence the model wrote was pinned, the opening says which of the question's
    words the paper's abstract lacks, so the reader can judge, instead of "X answers this"."""
    source = Source(1, "blind", BLIND_TITLE, BLIND_QUOTE, 1.0)
    assert fallback_lead([source]) == f"{BLIND_TITLE} answers this; its abstract says:"
    unsaid = absent(["transcription", "gesture", "visually"], f"{BLIND_TITLE} {BLIND_QUOTE}")
    assert unsaid == ["transcription", "gesture"]
    assert fallback_lead([source], unsaid) == (
        f'{BLIND_TITLE} is the closest paper, but its abstract does not mention "transcription" '
        'or "gesture"; it says:')
    assert fallback_lead([source], ["teach", "move"]) == (
        f"{BLIND_TITLE} is the closest paper, and may answer this in other words; it says:")


def test_the_questions_words_a_paper_lacks_are_named_as_the_question_writes_them():
    """"What is the best optimizer for training GANs?" got an image-translation paper and a
    model sentence that only restated its title: the opening names what its abstract lacks."""
    abstract = ("We propose to use pretraining to boost general image-to-image translation. We also "
                "propose adversarial training to enhance the texture synthesis.")
    title = "Pretraining is All You Need for Image-to-Image Translation"
    question = "Hey, what is the best optimizer for training GANs?"
    assert unmentioned(question, f"{title} {abstract}") == ["optimizer", "GANs"]
    assert unmentioned("Which papers study image translation?", f"{title} {abstract}") == []


def test_a_sentence_said_again_is_a_repeat_a_new_finding_is_not():
    first = ("TabPFN achieves very strong performance on small tabular datasets but is not designed "
             "for datasets larger than 1000 [1].")
    assert repeats("Notably, TabPFN achieves very strong performance on small tabular datasets but is "
                   "not designed for datasets larger than 1000 [2].", [first])
    assert not repeats("TuneTables optimizes fewer than 5% of TabPFN's parameters on 98 datasets [2].",
                       [first])
    assert not repeats("TabPFN is fast [2].", ["TabPFN is fast and small [1]."])  # too short to tell


def test_a_negation_its_quotes_give_no_ground_for_is_caught():
    """"What are the weaknesses of MAE pre-pretraining?": the model wrote that it "does not
    consistently improve" what the quote says it "consistently improves"."""
    from assistant.support import negates_unsaid

    quote = ("Pre-pretraining consistently improves both the model convergence and the downstream "
             "transfer performance across a range of model scales.")
    assert negates_unsaid("It does not consistently improve the model convergence [1].", quote)
    assert negates_unsaid("It can't scale [1].", quote)
    assert not negates_unsaid("It consistently improves the model convergence [1].", quote)
    said = "TabPFN is not designed for datasets larger than 1000 [1]."
    assert not negates_unsaid(said, "TabPFN is not designed to make predictions for datasets of "
                                    "size larger than 1000.")
    assert not negates_unsaid("It does not need pretraining [1].", "It works without any pretraining.")
