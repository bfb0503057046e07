"""Untrusted text (abstracts, titles) made safe to put in a prompt: `neutralise`."""

from __future__ import annotations

import re

from .text import clean

# Sources are data: the model is told so (prompts/system.txt, rule 4), and the prompt's structure
# must hold whatever an abstract says. So nothing an abstract or title contains may look like
# our delimiters (<source id=..>, </source>), a chat-template token (<|im_start|>, [INST],
# <<SYS>>) or a role line ("System: ..."). Its words stay: a paper *about* prompt injection
# keeps every sentence (a blocklist of phrases deleted real sentences from 3 of the 399 bundled
# abstracts and still let paraphrases and other languages through).
_TAG = re.compile(r"</?\s*(abstract|source|sources|system|instructions?|user|assistant)\b[^>]*>",
                  re.IGNORECASE)
_TEMPLATE_TOKEN = re.compile(r"<\|[^|<>]{0,40}\|>|\[/?INST\]|<</?SYS>>", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")  # one line: no text can start a line ("System: ...") of its own


def neutralise(text: str) -> str:
    """Untrusted text as one line of data: delimiter, template-token and control look-alikes
    blanked, every sentence kept."""
    text = _TEMPLATE_TOKEN.sub(" ", _TAG.sub(" ", clean(text)))
    return _WHITESPACE.sub(" ", text).strip()
