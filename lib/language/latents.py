"""The latent variables of the book's synthetic language: their names and the meaning of their
integer values (categorical latents index into the tuples of value names).

Introduced in chapter 'Residual stream' (chapters/residual_stream.py).
"""

from __future__ import annotations

from typing import Literal, get_args

from lib.language.lexicon import TOPICS, WORD_CLASSES

Role = Literal["none", "subj", "obj", "pp"]  # pp: inside a prepositional phrase (the preposition too)
ROLES: tuple[Role, ...] = get_args(Role)
Number = Literal["none", "sg", "pl"]
NUMBERS: tuple[Number, ...] = get_args(Number)
Mention = Literal["none", "first", "repeat"]
MENTIONS: tuple[Mention, ...] = get_args(Mention)
Span = Literal["text", "repeat", "random", "random_repeat"]
SPANS: tuple[Span, ...] = get_args(Span)
LatentName = Literal[
    "word_class", "topic", "entity", "role", "number", "mention", "sent_pos", "sentence", "span", "text"
]
LATENTS: dict[LatentName, tuple[str, ...] | None] = {
    "word_class": WORD_CLASSES,  # the token's class in the grammar; "reserved" for the rest
    "topic": TOPICS,  # the text's topic; -1 at <bos> and in rows of random words
    "entity": None,  # at names: 0, 1, 2 in order of introduction within the text; else -1
    "role": ROLES,  # the syntactic role of the noun phrase holding the token
    "number": NUMBERS,  # number of the token's smallest noun phrase (names sg, "X and Y" pl),
    #                     or of the verb/copula form (= its subject's number)
    "mention": MENTIONS,  # at names: first mention (introduction) or a repeat
    "sent_pos": None,  # position within the sentence (0 = first word); -1 at <bos>
    "sentence": None,  # sentence index within the text; -1 at <bos>
    "span": SPANS,  # how the token was produced: by the grammar ("text"), copied in a sentence
    #                 repeated after "again ," ("repeat"), or in a row of random words: its first
    #                 pass ("random") or a later pass copying it ("random_repeat")
    "text": None,  # index of the text within the packed row (a <bos> belongs to the text it opens)
}
assert tuple(LATENTS) == get_args(LatentName)
# The values of the role, number and mention latents, as the program records them.
_NONE, _SG, _PL = 0, 1, 2
_SUBJ, _OBJ, _PP = 1, 2, 3
_FIRST, _REPEAT = 1, 2
_TEXT, _COPIED, _RANDOM, _RANDOM_COPIED = 0, 1, 2, 3
