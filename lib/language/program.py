"""The generative program of the book's synthetic language: a coroutine per text that yields the
distribution of each next token and records the latents of the tokens it receives.

The same program samples texts (:mod:`lib.language.corpus`) and, replayed on a given text,
scores it exactly (:mod:`lib.language.exact`): it makes no random choice of its own. Introduced in
chapter 'Residual stream' (chapters/residual_stream.py).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import random
from collections.abc import Generator, Iterable

import numpy as np

from lib.language.latents import _COPIED, _FIRST, _NONE, _OBJ, _PL, _PP, _REPEAT, _SG, _SUBJ, _TEXT
from lib.language.lexicon import (
    ADJECTIVES,
    ANIMATE_NOUNS,
    BOS_ID,
    CONJUNCTIONS,
    COPULA,
    DETERMINERS,
    ID,
    INTRANSITIVE_VERBS,
    NAMES,
    OPENERS,
    PREPOSITIONS,
    SHARED,
    THING_NOUNS,
    TOPICS,
    TRANSITIVE_VERBS,
    VOCAB,
    _pairs,
)

# Probabilities of the program's choices:

P_RANDOM_ROW = 0.25  # a training row is random words repeated, not texts of the language
RANDOM_PERIOD = (4, 60)  # such a row is <bos> then N words drawn uniformly from WORD_IDS, N uniform
#                          in this range (inclusive), repeated until the row is full
MIN_SENTENCES, MAX_SENTENCES = 7, 12  # a text may end after MIN and must end at MAX sentences
P_END = 0.25  # at each sentence start once the text may end
P_INTRO = {1: 0.35, 2: 0.2}  # introduce another character, by how many the text already has
P_OPENER = 0.2  # "then ," etc.
P_AGAIN = 0.15  # "again ," then an earlier sentence of the text word for word (once one exists)
P_NAME_SUBJECT = 0.6  # a clause's subject is a character (else a common noun phrase)
P_AND = 0.25  # "NAME and NAME" (when the text has two characters or more)
P_SUBJECT_PP = 0.4  # the subject noun takes a prepositional phrase: the attractor
P_PREDICATE = {"cop": 0.2, "intransitive": 0.35, "transitive": 0.45}
P_ADJECTIVE = (0.4, 0.15)  # an adjective after the determiner; another one after an adjective
P_SINGULAR = 0.6  # the noun's number after "the" (a/this force sg, some/these pl)
P_OBJECT_NAME = 0.5  # the object is a character (when one other than the subject exists)
P_PLACE = {"intransitive": 0.5, "transitive": 0.25}  # a locative phrase after the verb phrase
P_COORDINATE = 0.15  # ", and|but <clause>" instead of "." (once per sentence)
TOPIC_SHARE = {"noun": (0.7, 0.2), "verb": (0.6, 0.3), "adj": (0.3, 0.6)}  # (own topic, shared);
#                                                   the rest is spread over the other topics
KIND_BOOST = 4.0  # weight of animate nouns as subjects, and of thing nouns after prepositions;
#                  introductions take animate nouns only


class _Dist:
    """A finite distribution over token ids, sampled by inverse CDF on ``random.random()``."""

    __slots__ = ("prob", "ids", "cum", "_dense")

    def __init__(self, weights: dict[int, float]):
        total = sum(weights.values())
        self.prob = {t: w / total for t, w in weights.items() if w > 0}
        self.ids = list(self.prob)
        self.cum = list(itertools.accumulate(self.prob.values()))
        self._dense: np.ndarray | None = None

    def sample(self, rng: random.Random) -> int:
        i = bisect.bisect_right(self.cum, rng.random() * self.cum[-1])
        return self.ids[min(i, len(self.ids) - 1)]

    def dense(self) -> np.ndarray:
        if self._dense is None:
            self._dense = np.zeros(len(VOCAB))
            self._dense[self.ids] = list(self.prob.values())
        return self._dense


def _mix(*parts: tuple[float, _Dist]) -> _Dist:
    weights: dict[int, float] = {}
    for w, dist in parts:
        for t, p in dist.prob.items():
            weights[t] = weights.get(t, 0.0) + w * p
    return _Dist(weights)


def _uniform(words: Iterable[str | int]) -> _Dist:
    return _Dist({ID[w] if isinstance(w, str) else w: 1.0 for w in words})


def _topic_weights(
    topic: int, lexicon: dict[str, list], share: tuple[float, float], weight=lambda item: 1.0
) -> dict:
    """Lexicon items weighted by topic: ``share`` = (own topic, shared); the rest goes evenly to
    the other topics; within each list, items are weighted by ``weight``."""
    own, shared = share
    groups = [(TOPICS[topic], own), (SHARED, shared)]
    groups += [(t, (1 - own - shared) / (len(TOPICS) - 1)) for t in TOPICS if t != TOPICS[topic]]
    out: dict = {}
    for key, mass in groups:
        ws = [weight(item) for item in lexicon[key]]
        for item, w in zip(lexicon[key], ws):
            out[item] = out.get(item, 0.0) + mass * w / sum(ws)
    return out


_CHARACTER, _AGENT, _PLACE, _ANY = "character", "agent", "place", "any"  # noun slots
_ALL_NOUNS = {
    k: [(p, True) for p in ANIMATE_NOUNS[k]] + [(p, False) for p in THING_NOUNS[k]] for k in (*TOPICS, SHARED)
}


@functools.cache
def _fixed(word: str) -> _Dist:
    return _uniform([word])


@functools.cache
def _determiners() -> _Dist:
    return _Dist({ID[w]: p for w, p in DETERMINERS.items()})


@functools.cache
def _nouns(topic: int, kind: str, number: int) -> _Dist:
    """Nouns for a slot; ``number`` is the determiner's constraint (``_NONE`` after "the")."""
    boost = {
        _CHARACTER: lambda item: 1.0 if item[1] else 0.0,
        _AGENT: lambda item: KIND_BOOST if item[1] else 1.0,
        _PLACE: lambda item: 1.0 if item[1] else KIND_BOOST,
        _ANY: lambda item: 1.0,
    }[kind]
    forms = {_SG: ((0, 1.0),), _PL: ((1, 1.0),), _NONE: ((0, P_SINGULAR), (1, 1 - P_SINGULAR))}
    weights = {}
    for (pair, _animate), w in _topic_weights(topic, _ALL_NOUNS, TOPIC_SHARE["noun"], boost).items():
        for index, p in forms[number]:
            weights[ID[pair[index]]] = w * p
    return _Dist(weights)


@functools.cache
def _adjectives(topic: int) -> _Dist:
    return _Dist({ID[w]: p for w, p in _topic_weights(topic, ADJECTIVES, TOPIC_SHARE["adj"]).items()})


@functools.cache
def _verbs(topic: int, transitive: bool, number: int) -> _Dist:
    lexicon = TRANSITIVE_VERBS if transitive else INTRANSITIVE_VERBS
    weights = _topic_weights(topic, lexicon, TOPIC_SHARE["verb"])
    return _Dist({ID[pair[number - 1]]: w for pair, w in weights.items()})


@functools.cache
def _after_determiner(topic: int, kind: str, number: int, adjectives: int) -> _Dist:
    p = P_ADJECTIVE[min(adjectives, 1)]
    return _mix((p, _adjectives(topic)), (1 - p, _nouns(topic, kind, number)))


@functools.cache
def _predicate_start(topic: int, number: int) -> _Dist:
    return _mix(
        (P_PREDICATE["cop"], _fixed(COPULA[number - 1])),
        (P_PREDICATE["intransitive"], _verbs(topic, False, number)),
        (P_PREDICATE["transitive"], _verbs(topic, True, number)),
    )


@functools.cache
def _after_name_subject(topic: int, coordination: bool) -> _Dist:
    p = P_AND if coordination else 0.0
    return _mix((p, _fixed("and")), (1 - p, _predicate_start(topic, _SG)))


@functools.cache
def _after_subject_noun(topic: int, number: int) -> _Dist:
    return _mix((P_SUBJECT_PP, _uniform(PREPOSITIONS)), (1 - P_SUBJECT_PP, _predicate_start(topic, number)))


@functools.cache
def _clause_end(coordination: bool) -> _Dist:
    p = P_COORDINATE if coordination else 0.0
    return _mix((1 - p, _fixed(".")), (p, _fixed(",")))


@functools.cache
def _after_verb_phrase(transitive: bool, coordination: bool) -> _Dist:
    p = P_PLACE["transitive" if transitive else "intransitive"]
    return _mix((p, _uniform(PREPOSITIONS)), (1 - p, _clause_end(coordination)))


@functools.cache
def _conjunctions() -> _Dist:
    return _Dist({ID[w]: p for w, p in CONJUNCTIONS.items()})


@functools.cache
def _names(ids: tuple[int, ...]) -> _Dist:
    return _uniform(ids)


@functools.cache
def _clause_start(entities: tuple[int, ...]) -> _Dist:
    return _mix((P_NAME_SUBJECT, _names(entities)), (1 - P_NAME_SUBJECT, _determiners()))


@functools.cache
def _object_start(others: tuple[int, ...]) -> _Dist:
    if not others:
        return _determiners()
    return _mix((P_OBJECT_NAME, _names(others)), (1 - P_OBJECT_NAME, _determiners()))


@functools.cache
def _new_name(entities: tuple[int, ...]) -> _Dist:
    return _uniform([ID[n] for n in NAMES if ID[n] not in entities])


@functools.cache
def _sentence_start(entities: tuple[int, ...], sentence: int, can_repeat: bool) -> _Dist:
    p_end = 1.0 if sentence >= MAX_SENTENCES else P_END if sentence >= MIN_SENTENCES else 0.0
    p_intro = P_INTRO.get(len(entities), 0.0)
    p_again = P_AGAIN if can_repeat else 0.0
    rest = 1 - P_OPENER - p_intro - p_again
    return _mix(
        (p_end, _fixed("<bos>")),
        ((1 - p_end) * p_intro, _fixed("there")),
        ((1 - p_end) * p_again, _fixed("again")),
        ((1 - p_end) * P_OPENER, _uniform(OPENERS)),
        ((1 - p_end) * rest, _clause_start(entities)),
    )


_NAME_IDS = frozenset(ID[n] for n in NAMES)
_ADJECTIVE_IDS = frozenset(ID[w] for ws in ADJECTIVES.values() for w in ws)
_PREPOSITION_IDS = frozenset(ID[w] for w in PREPOSITIONS)
_OPENER_IDS = frozenset(ID[w] for w in OPENERS)
_COPULA_IDS = frozenset(ID[w] for w in COPULA)
_TRANSITIVE_IDS = frozenset(ID[w] for p in _pairs(TRANSITIVE_VERBS) for w in p)
_DETERMINER_NUMBER = {ID["the"]: _NONE, ID["a"]: _SG, ID["this"]: _SG, ID["some"]: _PL, ID["these"]: _PL}
_NOUN_NUMBER = {ID[p[i]]: i + 1 for lex in (ANIMATE_NOUNS, THING_NOUNS) for p in _pairs(lex) for i in (0, 1)}

_Program = Generator[_Dist, int, None]


class _Text:
    """One text's generative program: a coroutine that yields the distribution of the next token,
    receives the token chosen (sampled, or read from a given text) and records its latents.

    It makes no random choice of its own, so its state is a function of the topic and the
    tokens received: replaying a text under each topic gives its exact probabilities.
    """

    def __init__(self, topic: int):
        self.topic = topic
        self.entities: list[int] = []  # name ids, in order of introduction
        self.sentence = 0
        self.sent_pos = 0
        self.tokens: list[int] = []  # received so far
        self.repeatable: list[int] = []  # where each sentence a repeat may copy starts in tokens
        self.latents: list[list[int]] = []  # per token: entity, role, number, mention, sent_pos,
        #                                     sentence, span

    def emit(
        self, tok: int, role: int = _NONE, number: int = _NONE, name: bool = False, first: bool = False
    ) -> None:
        entity, mention = (-1, _NONE)
        if name:
            entity, mention = self.entities.index(tok), _FIRST if first else _REPEAT
        self.tokens.append(tok)
        self.latents.append([entity, role, number, mention, self.sent_pos, self.sentence, _TEXT])
        self.sent_pos += 1

    def program(self) -> _Program:
        yield from self.introduction((yield _fixed("there")))
        while True:
            self.sentence, self.sent_pos = self.sentence + 1, 0
            tok = yield _sentence_start(tuple(self.entities), self.sentence, bool(self.repeatable))
            if tok == BOS_ID:  # the end of the text
                self.latents.append([-1, _NONE, _NONE, _NONE, -1, -1, _TEXT])
                return
            if tok == ID["there"]:
                yield from self.introduction(tok)
                continue
            if tok == ID["again"]:
                self.emit(tok)
                self.emit((yield _fixed(",")))
                yield from self.repeat()
                continue
            self.repeatable.append(len(self.tokens))
            if tok in _OPENER_IDS:
                self.emit(tok)
                self.emit((yield _fixed(",")))
                tok = yield _clause_start(tuple(self.entities))
            end = yield from self.clause(tok, coordination=True)
            if end == ID[","]:
                self.emit(end)
                self.emit((yield _conjunctions()))
                end = yield from self.clause((yield _clause_start(tuple(self.entities))), coordination=False)
            self.emit(end)

    def repeat(self) -> _Program:
        """An earlier sentence (not an introduction, not a repeat), drawn uniformly, word for word
        up to its ``.``. Each token's distribution is over the next words of the earlier sentences
        that agree with the copy so far; a copied token keeps its source's entity, role, number and
        mention (names are repeats)."""
        sources, i = list(self.repeatable), 0
        while True:
            weights: dict[int, float] = {}
            for s in sources:
                weights[self.tokens[s + i]] = weights.get(self.tokens[s + i], 0.0) + 1.0
            tok = yield _Dist(weights)
            sources = [s for s in sources if self.tokens[s + i] == tok]
            entity, role, number, mention, *_ = self.latents[sources[0] + i]
            self.tokens.append(tok)
            self.latents.append([entity, role, number, mention, self.sent_pos, self.sentence, _COPIED])
            self.sent_pos, i = self.sent_pos + 1, i + 1
            if tok == ID["."]:
                return

    def introduction(self, there: int) -> _Program:
        """``there was [also] a ADJ* NOUN named NAME .`` (``there`` already received)."""
        self.emit(there)
        self.emit((yield _fixed("was")))
        if self.entities:
            self.emit((yield _fixed("also")))
        yield from self.noun_phrase((yield _fixed("a")), _NONE, _CHARACTER)
        self.emit((yield _fixed("named")))
        name = yield _new_name(tuple(self.entities))
        self.entities.append(name)
        self.emit(name, number=_SG, name=True, first=True)
        self.emit((yield _fixed(".")))

    def noun_phrase(self, det: int, role: int, kind: str) -> Generator[_Dist, int, int]:
        """``DET ADJ* NOUN`` (the determiner already received); returns the noun's number."""
        start = len(self.latents)
        self.emit(det, role)
        constraint, adjectives = _DETERMINER_NUMBER[det], 0
        tok = yield _after_determiner(self.topic, kind, constraint, 0)
        while tok in _ADJECTIVE_IDS:
            self.emit(tok, role)
            adjectives += 1
            tok = yield _after_determiner(self.topic, kind, constraint, adjectives)
        self.emit(tok, role)
        number = _NOUN_NUMBER[tok]
        for latent in self.latents[start:]:
            latent[2] = number
        return number

    def clause(self, tok: int, coordination: bool) -> Generator[_Dist, int, int]:
        """Subject (``tok``, already received, starts it), then the predicate; returns the token
        that ends the clause (``.``, or ``,`` before a coordinated clause)."""
        topic, subject = self.topic, []
        if tok in _NAME_IDS:
            subject.append(tok)
            self.emit(tok, _SUBJ, _SG, name=True)
            number, tok = _SG, (yield _after_name_subject(topic, len(self.entities) >= 2))
            if tok == ID["and"]:
                self.emit(tok, _SUBJ, _PL)
                second = yield _names(tuple(e for e in self.entities if e != subject[0]))
                subject.append(second)
                self.emit(second, _SUBJ, _SG, name=True)
                number, tok = _PL, (yield _predicate_start(topic, _PL))
        else:
            number = yield from self.noun_phrase(tok, _SUBJ, _AGENT)
            tok = yield _after_subject_noun(topic, number)
            if tok in _PREPOSITION_IDS:
                self.emit(tok, _PP)
                yield from self.noun_phrase((yield _determiners()), _PP, _PLACE)
                tok = yield _predicate_start(topic, number)
        self.emit(tok, number=number)  # the verb or copula
        if tok in _COPULA_IDS:
            self.emit((yield _adjectives(topic)))
            return (yield _clause_end(coordination))
        transitive = tok in _TRANSITIVE_IDS
        if transitive:
            tok = yield _object_start(tuple(e for e in self.entities if e not in subject))
            if tok in _NAME_IDS:
                self.emit(tok, _OBJ, _SG, name=True)
            else:
                yield from self.noun_phrase(tok, _OBJ, _ANY)
        tok = yield _after_verb_phrase(transitive, coordination)
        if tok in _PREPOSITION_IDS:
            self.emit(tok, _PP)
            yield from self.noun_phrase((yield _determiners()), _PP, _PLACE)
            tok = yield _clause_end(coordination)
        return tok
