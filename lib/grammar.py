"""The synthetic language of the language organism: a probabilistic grammar with known latents.

Introduced in chapter 'Residual stream' (chapters/residual_stream.py); the chapters on
attention sinks, refusal, task vectors, sparse autoencoders and RL build on the organism trained
on it.

A text is a few sentences of word tokens (every word is one token) generated left to right by a
probabilistic program:

- **topic**: each text has one of :data:`TOPICS`, drawn uniformly, which weights the choice of
  nouns, verbs and adjectives (a topic's own words are most likely; the shared words and the
  other topics' words keep some mass, so the topic is a soft latent that the tokens reveal
  gradually);
- **entities**: the text opens with ``there was a <noun> named <NAME> .`` and may introduce up to
  two more characters (``there was also a ...``), each named from a pool of :data:`NAMES`; later
  sentences refer to them by name, as subjects (``tom and mia run``) and objects (never the
  clause's own subject), so recurring names are predictable only by copying from context;
- **agreement**: the subject's number (a name, ``NAME and NAME``, or ``DET ADJ* NOUN`` with an
  optional prepositional phrase whose noun may have the other number, an *attractor*) fixes the
  form of the verb or copula that follows it, up to several tokens later
  (``the dog near the old trees runs``; ``the dogs near the old tree run``);
- **punctuation** ``.`` and ``,`` (after sentence openers like ``then ,`` and between coordinated
  clauses) are tokens;
- after at least :data:`MIN_SENTENCES` sentences the text may end: the program then emits
  ``<bos>``, which starts the next text when texts are packed into rows.

The grammar is unambiguous left to right: every token determines which branch of the program
produced it, so the program's state after a prefix is a function of the prefix and the topic.
That makes the exact next-token distribution computable (:func:`true_next_token_logprobs`,
:func:`true_next_token_probs`). The vocabulary (:data:`VOCAB`) also reserves the tokens of
formats that later organisms are fine-tuned on: a chat format with harmless and harmful requests
and a refusal, few-shot word-pair tasks, and a sorting task (see the end of the module).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import random
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformers import PreTrainedTokenizerFast

# --------------------------------------------------------------------------------------------
# The lexicon. Every list is fixed: VOCAB's order, and so every token id, never changes.

TOPICS = ("farm", "sea", "city", "forest", "kitchen")
SHARED = "shared"  # the lexicon's key for words that belong to no topic

# (singular, plural) pairs. Animate nouns are likelier as subjects and in introductions;
# thing nouns are likelier after prepositions.
ANIMATE_NOUNS = {
    "farm": [("farmer", "farmers"), ("cow", "cows"), ("pig", "pigs"), ("hen", "hens"),
             ("horse", "horses"), ("goat", "goats")],
    "sea": [("sailor", "sailors"), ("whale", "whales"), ("crab", "crabs"), ("gull", "gulls"),
            ("seal", "seals"), ("fisherman", "fishermen")],
    "city": [("driver", "drivers"), ("clerk", "clerks"), ("teacher", "teachers"),
             ("guard", "guards"), ("doctor", "doctors"), ("child", "children")],
    "forest": [("hunter", "hunters"), ("fox", "foxes"), ("wolf", "wolves"), ("bear", "bears"),
               ("owl", "owls"), ("rabbit", "rabbits")],
    "kitchen": [("chef", "chefs"), ("baker", "bakers"), ("waiter", "waiters"), ("cat", "cats"),
                ("mouse", "mice"), ("guest", "guests")],
    SHARED: [("man", "men"), ("woman", "women"), ("dog", "dogs"), ("bird", "birds"),
             ("friend", "friends")],
}
THING_NOUNS = {
    "farm": [("farm", "farms"), ("barn", "barns"), ("field", "fields"), ("fence", "fences"),
             ("tractor", "tractors"), ("egg", "eggs"), ("well", "wells")],
    "sea": [("sea", "seas"), ("boat", "boats"), ("wave", "waves"), ("ship", "ships"),
            ("shell", "shells"), ("net", "nets"), ("island", "islands")],
    "city": [("city", "cities"), ("street", "streets"), ("car", "cars"), ("bus", "buses"),
             ("tower", "towers"), ("shop", "shops"), ("bridge", "bridges")],
    "forest": [("forest", "forests"), ("tree", "trees"), ("river", "rivers"), ("stone", "stones"),
               ("cave", "caves"), ("leaf", "leaves"), ("path", "paths")],
    "kitchen": [("kitchen", "kitchens"), ("pot", "pots"), ("knife", "knives"), ("cup", "cups"),
                ("table", "tables"), ("oven", "ovens"), ("cake", "cakes")],
    SHARED: [("house", "houses"), ("box", "boxes"), ("door", "doors"), ("window", "windows"),
             ("bag", "bags"), ("ball", "balls")],
}
# (singular, plural) verb forms: "the dog runs", "the dogs run".
INTRANSITIVE_VERBS = {
    "farm": [("grazes", "graze")],
    "sea": [("swims", "swim"), ("dives", "dive")],
    "city": [("shouts", "shout"), ("hurries", "hurry")],
    "forest": [("hides", "hide"), ("howls", "howl")],
    "kitchen": [("boils", "boil")],
    SHARED: [("sleeps", "sleep"), ("runs", "run"), ("waits", "wait"), ("sings", "sing"),
             ("walks", "walk"), ("laughs", "laugh"), ("falls", "fall"), ("rests", "rest"),
             ("works", "work"), ("plays", "play")],
}
TRANSITIVE_VERBS = {
    "farm": [("feeds", "feed"), ("fixes", "fix"), ("steals", "steal"), ("milks", "milk"),
             ("plants", "plant")],
    "sea": [("sails", "sail"), ("catches", "catch"), ("pulls", "pull"), ("sinks", "sink")],
    "city": [("drives", "drive"), ("builds", "build"), ("paints", "paint"), ("sells", "sell"),
             ("robs", "rob")],
    "forest": [("climbs", "climb"), ("hunts", "hunt"), ("burns", "burn"), ("kills", "kill"),
               ("chops", "chop")],
    "kitchen": [("bakes", "bake"), ("cooks", "cook"), ("cleans", "clean"), ("washes", "wash"),
                ("cuts", "cut"), ("poisons", "poison")],
    SHARED: [("sees", "see"), ("finds", "find"), ("likes", "like"), ("carries", "carry"),
             ("watches", "watch"), ("helps", "help"), ("follows", "follow"),
             ("breaks", "break"), ("hurts", "hurt")],
}
COPULA = ("is", "are")
ANTONYMS = [("hot", "cold"), ("big", "small"), ("old", "young"), ("happy", "sad"),
            ("fast", "slow"), ("dark", "bright"), ("wet", "dry"), ("loud", "quiet"),
            ("tall", "short"), ("good", "bad"), ("full", "empty"), ("rich", "poor"),
            ("strong", "weak"), ("soft", "hard"), ("heavy", "light"), ("kind", "cruel")]
ADJECTIVES = {
    "farm": ["muddy", "brown", "lazy"],
    "sea": ["salty", "blue", "deep"],
    "city": ["busy", "grey", "noisy"],
    "forest": ["wild", "green", "mossy"],
    "kitchen": ["sweet", "fresh", "spicy"],
    SHARED: [word for pair in ANTONYMS for word in pair],
}
NAMES = (
    "tom mia sam ben ana leo eva max zoe ida jan kim lea noa otto paul rosa tim uma vera wes ada "
    "bob cleo dan eli finn gus hugo iris jack kai liam luna mara nina omar pia quinn ray rita "
    "sara theo ulla vic walt xena yara zack alma bruno carl dora emil fred greta hans inga jonas "
    "karl lena milo nora olga"
).split()
DETERMINERS = {"the": 0.5, "a": 0.2, "this": 0.05, "some": 0.15, "these": 0.1}
PREPOSITIONS = ("near", "behind", "under", "beside", "above", "in", "on", "by", "with")
OPENERS = ("then", "later", "soon", "suddenly")  # sentence openers, followed by ","
CONJUNCTIONS = {"and": 0.7, "but": 0.3}  # between coordinated clauses, after ","
FUNCTION_WORDS = ("there", "was", "also", "named")
SPECIALS = ("<bos>", "<pad>", "<unk>")
PUNCTUATION = (".", ",")

# Tokens the base language never produces, reserved for formats later organisms learn.
CHAT_WORDS = ("<user>", "<assistant>", "<eos>", "?", "how", "do", "i", "can", "you", "me", "to",
              "please", "tell", "sorry", "cannot", "not", "sure", "here", "first", "that", "it")
TASK_WORDS = ("->", "sort", ":", "=")
LETTERS = tuple("abcdefghijklmnopqrstuvwxyz")


def _pairs(lexicon: dict[str, list[tuple[str, str]]]) -> list[tuple[str, str]]:
    return [pair for key in (*TOPICS, SHARED) for pair in lexicon[key]]


def _build_vocab() -> list[str]:
    words = [*SPECIALS, *PUNCTUATION, *FUNCTION_WORDS, *DETERMINERS, *PREPOSITIONS, *OPENERS,
             *CONJUNCTIONS, *COPULA]
    for lexicon in (ANIMATE_NOUNS, THING_NOUNS, INTRANSITIVE_VERBS, TRANSITIVE_VERBS):
        words += [w for pair in _pairs(lexicon) for w in pair]
    words += [w for key in (*TOPICS, SHARED) for w in ADJECTIVES[key]] + NAMES
    base = set(words)
    assert len(base) == len(words), "the base lexicon's word lists overlap"
    # reserved words may reuse base words ("a", "i", "is", "with", "help", ...): one token each
    return words + [w for w in dict.fromkeys(CHAT_WORDS + TASK_WORDS + LETTERS) if w not in base]


VOCAB: list[str] = _build_vocab()
ID: dict[str, int] = {w: i for i, w in enumerate(VOCAB)}
BOS_ID = ID["<bos>"]

# --------------------------------------------------------------------------------------------
# Latent variables: their names and the meaning of their integer values.

WORD_CLASSES = ("bos", "det", "adj", "noun", "name", "verb", "cop", "prep", "conj", "adv",
                "punct", "func", "reserved")
ROLES = ("none", "subj", "obj", "pp")  # pp: inside a prepositional phrase (the preposition too)
NUMBERS = ("none", "sg", "pl")
MENTIONS = ("none", "first", "repeat")
LATENTS: dict[str, tuple[str, ...] | None] = {
    "word_class": WORD_CLASSES,  # the token's class in the grammar; "reserved" for the rest
    "topic": TOPICS,  # the text's topic; -1 at <bos>
    "entity": None,  # at names: 0, 1, 2 in order of introduction within the text; else -1
    "role": ROLES,  # the syntactic role of the noun phrase holding the token
    "number": NUMBERS,  # number of the token's smallest noun phrase (names sg, "X and Y" pl),
    #                     or of the verb/copula form (= its subject's number)
    "mention": MENTIONS,  # at names: first mention (introduction) or a repeat
    "sent_pos": None,  # position within the sentence (0 = first word); -1 at <bos>
    "sentence": None,  # sentence index within the text; -1 at <bos>
    "text": None,  # index of the text within the packed row (a <bos> belongs to the text it opens)
}
_NONE, _SG, _PL = 0, 1, 2
_SUBJ, _OBJ, _PP = 1, 2, 3
_FIRST, _REPEAT = 1, 2


def _word_classes() -> list[int]:
    classes = [WORD_CLASSES.index("reserved")] * len(VOCAB)
    groups = {
        "bos": ["<bos>"], "det": DETERMINERS, "prep": PREPOSITIONS, "conj": CONJUNCTIONS,
        "adv": OPENERS, "punct": PUNCTUATION, "func": FUNCTION_WORDS, "cop": COPULA,
        "name": NAMES, "adj": [w for ws in ADJECTIVES.values() for w in ws],
        "noun": [w for lex in (ANIMATE_NOUNS, THING_NOUNS) for p in _pairs(lex) for w in p],
        "verb": [w for lex in (INTRANSITIVE_VERBS, TRANSITIVE_VERBS) for p in _pairs(lex) for w in p],
    }
    for name, words in groups.items():
        for w in words:
            classes[ID[w]] = WORD_CLASSES.index(name)
    return classes


def _other_number() -> list[int]:
    other = list(range(len(VOCAB)))
    pairs = [COPULA, ("this", "these")]
    for lexicon in (ANIMATE_NOUNS, THING_NOUNS, INTRANSITIVE_VERBS, TRANSITIVE_VERBS):
        pairs += _pairs(lexicon)
    for sg, pl in pairs:
        other[ID[sg]], other[ID[pl]] = ID[pl], ID[sg]
    return other


WORD_CLASS_OF: Int[Tensor, " vocab"] = torch.tensor(_word_classes())
"""The word class of every token id (an index into :data:`WORD_CLASSES`)."""
WORD_IDS: Int[Tensor, " n_words"] = torch.nonzero(
    ~torch.isin(WORD_CLASS_OF, torch.tensor([WORD_CLASSES.index("bos"), WORD_CLASSES.index("reserved")]))
)[:, 0]
"""The ids of the words the language produces: no ``<bos>``, no reserved ids (those are kept for
later organisms' formats and never occur in the language)."""
OTHER_NUMBER: Int[Tensor, " vocab"] = torch.tensor(_other_number())
"""For nouns, verbs, the copula and this/these: the id of the same word in the other number
(``runs`` -> ``run``); every other id maps to itself."""

# --------------------------------------------------------------------------------------------
# The generative program. Probabilities of its choices:

MIN_SENTENCES, MAX_SENTENCES = 7, 12  # a text may end after MIN and must end at MAX sentences
P_END = 0.25  # at each sentence start once the text may end
P_INTRO = {1: 0.35, 2: 0.2}  # introduce another character, by how many the text already has
P_OPENER = 0.2  # "then ," etc.
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


def _topic_weights(topic: int, lexicon: dict[str, list], share: tuple[float, float],
                   weight=lambda item: 1.0) -> dict:
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
_ALL_NOUNS = {k: [(p, True) for p in ANIMATE_NOUNS[k]] + [(p, False) for p in THING_NOUNS[k]]
              for k in (*TOPICS, SHARED)}


@functools.cache
def _fixed(word: str) -> _Dist:
    return _uniform([word])


@functools.cache
def _determiners() -> _Dist:
    return _Dist({ID[w]: p for w, p in DETERMINERS.items()})


@functools.cache
def _nouns(topic: int, kind: str, number: int) -> _Dist:
    """Nouns for a slot; ``number`` is the determiner's constraint (``_NONE`` after "the")."""
    boost = {_CHARACTER: lambda item: 1.0 if item[1] else 0.0,
             _AGENT: lambda item: KIND_BOOST if item[1] else 1.0,
             _PLACE: lambda item: 1.0 if item[1] else KIND_BOOST, _ANY: lambda item: 1.0}[kind]
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
    return _mix((P_PREDICATE["cop"], _fixed(COPULA[number - 1])),
                (P_PREDICATE["intransitive"], _verbs(topic, False, number)),
                (P_PREDICATE["transitive"], _verbs(topic, True, number)))


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
def _sentence_start(entities: tuple[int, ...], sentence: int) -> _Dist:
    p_end = 1.0 if sentence >= MAX_SENTENCES else P_END if sentence >= MIN_SENTENCES else 0.0
    p_intro = P_INTRO.get(len(entities), 0.0)
    rest = 1 - P_OPENER - p_intro
    return _mix((p_end, _fixed("<bos>")),
                ((1 - p_end) * p_intro, _fixed("there")),
                ((1 - p_end) * P_OPENER, _uniform(OPENERS)),
                ((1 - p_end) * rest, _clause_start(entities)))


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
        self.latents: list[list[int]] = []  # per token: entity, role, number, mention, sent_pos, sentence

    def emit(self, tok: int, role: int = _NONE, number: int = _NONE, name: bool = False,
             first: bool = False) -> None:
        entity, mention = (-1, _NONE)
        if name:
            entity, mention = self.entities.index(tok), _FIRST if first else _REPEAT
        self.latents.append([entity, role, number, mention, self.sent_pos, self.sentence])
        self.sent_pos += 1

    def program(self) -> _Program:
        yield from self.introduction((yield _fixed("there")))
        while True:
            self.sentence, self.sent_pos = self.sentence + 1, 0
            tok = yield _sentence_start(tuple(self.entities), self.sentence)
            if tok == BOS_ID:  # the end of the text
                self.latents.append([-1, _NONE, _NONE, _NONE, -1, -1])
                return
            if tok == ID["there"]:
                yield from self.introduction(tok)
                continue
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


# --------------------------------------------------------------------------------------------
# Sampling: texts packed into rows.


@dataclass(frozen=True)
class Corpus:
    """Rows of packed texts and, aligned with every token, the latents that produced it.

    ``latents`` maps each name of :data:`LATENTS` to an int tensor shaped like ``tokens``; for
    categorical latents, :data:`LATENTS` gives the meaning of each value
    (chapter 'Residual stream').
    """

    tokens: Int[Tensor, "batch pos"]
    latents: dict[str, Int[Tensor, "batch pos"]]


def _sample_text(rng: random.Random, topic: int, max_len: int) -> tuple[list[int], list[list[int]]]:
    """Run the program, sampling each token, for at most ``max_len`` tokens."""
    text = _Text(topic)
    program = text.program()
    dist, tokens = next(program), []
    while len(tokens) < max_len:
        tokens.append(dist.sample(rng))
        try:
            dist = program.send(tokens[-1])
        except StopIteration:
            break
    return tokens, text.latents


def _row(rng: random.Random, n_ctx: int) -> tuple[list[int], list[list[int]]]:
    """``<bos>`` then texts, each ended by the ``<bos>`` that opens the next, cut at ``n_ctx``.
    Latents per token, in the order of :data:`LATENTS` after ``word_class``."""
    tokens, latents, text = [BOS_ID], [[-1, -1, _NONE, _NONE, _NONE, -1, -1, 0]], 0
    while len(tokens) < n_ctx:
        topic = min(int(rng.random() * len(TOPICS)), len(TOPICS) - 1)
        words, lats = _sample_text(rng, topic, n_ctx - len(tokens))
        for tok, lat in zip(words, lats):
            text += tok == BOS_ID
            latents.append([-1 if tok == BOS_ID else topic, *lat, text])
        tokens += words
    return tokens, latents


def sample_corpus(seed: int, batch: int, n_ctx: int) -> Corpus:
    """``batch`` rows of ``n_ctx`` tokens with their latents, deterministic from ``seed``; the
    same rows as the first batch of :func:`batches` (chapter 'Residual stream')."""
    rng = random.Random(seed)
    rows = [_row(rng, n_ctx) for _ in range(batch)]
    tokens = torch.tensor([tokens for tokens, _ in rows])
    values = torch.tensor([latents for _, latents in rows])  # [batch, pos, latent]
    names = [name for name in LATENTS if name != "word_class"]
    return Corpus(tokens, {"word_class": WORD_CLASS_OF[tokens], **{n: values[..., i] for i, n in enumerate(names)}})


def batches(seed: int, batch_size: int, n_ctx: int,
            tok: PreTrainedTokenizerFast | None = None) -> Iterator[Int[Tensor, "batch n_ctx"]]:
    """An endless, deterministic stream of training rows: texts packed back to back, each opened
    by ``<bos>``, so no padding is needed. ``tok``, when given, is checked to be this language's
    tokenizer (chapter 'Residual stream')."""
    if tok is not None and tok.get_vocab() != ID:
        raise ValueError("the tokenizer's vocabulary is not lib.grammar.VOCAB; build it with lib.grammar.tokenizer")
    rng = random.Random(seed)
    while True:
        yield torch.tensor([_row(rng, n_ctx)[0] for _ in range(batch_size)])


def tokenizer(path: Path) -> PreTrainedTokenizerFast:
    """The language's word-level HF tokenizer (``<bos>`` prepended), saved to ``path``
    (chapter 'Residual stream')."""
    from lib.zoo import word_tokenizer  # imported here: lib.zoo imports this module for its recipes

    return word_tokenizer(VOCAB, path)


# --------------------------------------------------------------------------------------------
# The exact next-token distribution.


def _replay(text: list[int], topic: int) -> list[_Dist]:
    """The distribution each token of ``text`` was drawn from, replaying the program under
    ``topic``; raises ``ValueError`` at a token the grammar cannot produce there."""
    program, dists = _Text(topic).program(), []
    for i, tok in enumerate(text):
        dists.append(next(program) if i == 0 else program.send(text[i - 1]))
        if tok not in dists[-1].prob:
            raise ValueError(f"token {VOCAB[tok]!r} cannot follow {' '.join(VOCAB[t] for t in text[:i])!r} in the grammar")
    return dists


def _segments(row: list[int]) -> list[tuple[int, list[int]]]:
    """(position of the opening ``<bos>``, the text's tokens up to and including its closing
    ``<bos>``) for every text in a row."""
    starts = [i for i, t in enumerate(row) if t == BOS_ID]
    if not starts or starts[0] != 0:
        raise ValueError("every row must start with <bos>")
    ends = starts[1:] + [len(row) - 1]
    return [(s, row[s + 1 : e + 1]) for s, e in zip(starts, ends) if e > s]


def _score(tokens: Int[Tensor, "batch pos"], topic: Int[Tensor, "batch pos"] | None,
           dense: bool) -> Float[Tensor, "batch pos-1 ..."]:
    batch, n = tokens.shape
    out = torch.zeros(batch, n - 1, len(VOCAB) if dense else 1, dtype=torch.float64)
    for b, row in enumerate(tokens.tolist()):
        for start, text in _segments(row):
            topics = range(len(TOPICS)) if topic is None else [int(topic[b, start + 1])]
            dists = [_replay(text, z) for z in topics]
            lp = torch.tensor([[math.log(d.prob[t]) for d, t in zip(ds, text)] for ds in dists],
                              dtype=torch.float64)  # [topic, T]: log p(x_t | x_<t, topic)
            before = torch.cat([torch.zeros(len(topics), 1, dtype=torch.float64), lp.cumsum(1)[:, :-1]], 1)
            posterior = (before - before.logsumexp(0)).exp()  # p(topic | x_<t), uniform prior
            span = slice(start, start + len(text))
            if dense:
                table = torch.tensor(np.array([[d.dense() for d in ds] for ds in dists]))  # [topic, T, vocab]
                out[b, span] = torch.einsum("zt,ztv->tv", posterior, table)
            else:
                out[b, span, 0] = (posterior * lp.exp()).sum(0).log()
    return out.float() if dense else out[..., 0].float()


def true_next_token_logprobs(
    tokens: Int[Tensor, "batch pos"], topic: Int[Tensor, "batch pos"] | None = None
) -> Float[Tensor, "batch pos-1"]:
    """Log-probability of each actual next token under the generator: entry ``t`` is
    ``log p(tokens[:, t+1] | tokens[:, :t+1])`` (chapter 'Residual stream').

    By default the text's topic, the only latent the tokens do not determine, is marginalised out
    exactly by Bayesian filtering over the topics (every other latent is a function of the
    prefix: the grammar is unambiguous). This is the language's true conditional distribution
    given the tokens of the current text, so minus its mean is the irreducible loss: no model that
    sees the same tokens can have a lower expected cross-entropy. (Earlier texts in a packed row
    are independent and carry no information; a text cut at the end of a row is scored up to the
    cut.)

    With ``topic`` (the corpus's ``latents["topic"]``) it conditions on the true topic too: the
    "oracle with latents". That is a lower bound no token-only model reaches, since the topic must
    be inferred from the tokens. Summed over a text, the topic-marginal loss exceeds it by at most
    ``log(5)`` nats, and on average by the information the text carries about its topic.
    """
    return _score(tokens, topic, dense=False)


def true_next_token_probs(
    tokens: Int[Tensor, "batch pos"], topic: Int[Tensor, "batch pos"] | None = None
) -> Float[Tensor, "batch pos-1 vocab"]:
    """The full next-token distribution after every prefix, under the generator, with the topic
    marginalised or given as in :func:`true_next_token_logprobs` (chapter 'Residual stream')."""
    return _score(tokens, topic, dense=True)


# --------------------------------------------------------------------------------------------
# Measuring a model on the language.

EVAL_SEED, EVAL_BATCH = 1_000_003, 64  # the held-out rows of the training log


def agreement_sites(corpus: Corpus) -> tuple[Bool[Tensor, "batch pos"], Bool[Tensor, "batch pos"]]:
    """Where agreement is tested, and where it is hard (chapter 'Residual stream').

    Returns the verb and copula positions (their form agrees with the subject; the wrong form is
    ``OTHER_NUMBER[token]``), and which of them have an *attractor*: a noun of the other number
    inside the subject, between its head and the verb (``the dog near the trees runs``).
    """
    cls, role, number = (corpus.latents[k] for k in ("word_class", "role", "number"))
    verbs = (cls == WORD_CLASSES.index("verb")) | (cls == WORD_CLASSES.index("cop"))
    attractor = torch.zeros_like(verbs)
    noun = WORD_CLASSES.index("noun")
    for b, p in verbs.nonzero().tolist():
        q = p - 1
        while q >= 0 and int(role[b, q]) in (_SUBJ, _PP):  # walk back over the subject
            if cls[b, q] == noun and role[b, q] == _PP and number[b, q] != number[b, p]:
                attractor[b, p] = True
            q -= 1
    return verbs, attractor


def _in_context_names(corpus: Corpus, sites: Bool[Tensor, "batch pos"]) -> Bool[Tensor, "site vocab"]:
    """For each site, the names already mentioned in its text."""
    mask = torch.zeros(int(sites.sum()), len(VOCAB), dtype=torch.bool)
    for i, (b, p) in enumerate(sites.nonzero().tolist()):
        row = corpus.tokens[b, :p].tolist()
        start = len(row) - 1 - row[::-1].index(BOS_ID)
        mask[i, [t for t in row[start:] if t in _NAME_IDS]] = True
    return mask


@functools.cache
def _eval_set(n_ctx: int) -> dict[str, Tensor]:
    corpus = sample_corpus(EVAL_SEED, EVAL_BATCH, n_ctx)
    verbs, attractor = agreement_sites(corpus)
    mention = corpus.latents["mention"]
    return {"tokens": corpus.tokens, "truth": true_next_token_logprobs(corpus.tokens),
            "verbs": verbs[:, 1:], "attractor": attractor[verbs],
            "repeat": (mention == _REPEAT)[:, 1:], "first": (mention == _FIRST)[:, 1:],
            "context": _in_context_names(corpus, mention == _REPEAT)}


def evaluate(model: HookedTransformer) -> dict[str, float]:
    """Metrics of a model on fixed held-out rows (seed :data:`EVAL_SEED`), for the training log
    and the chapters (chapter 'Residual stream'):

    - ``heldout_loss`` and ``true_loss``: mean next-token cross-entropy of the model and of the
      generator (:func:`true_next_token_logprobs`, topic marginalised) on the same tokens;
    - ``name_repeat_loss`` / ``name_repeat_true_loss``: the same at tokens that repeat a name
      mentioned earlier in the text, and ``name_first_loss`` at first mentions (unpredictable
      beyond "some name not yet used");
    - ``name_copy_mass``: at repeats, the share of the model's probability on names that goes to
      names already in the text (1 for the generator);
    - ``agreement_acc``: the fraction of verbs and copulas where the model prefers the correct
      form to the other number's form; ``agreement_acc_attractor`` on those with an attractor.
    """
    data = _eval_set(model.cfg.n_ctx)
    tokens = data["tokens"].to(model.cfg.device)
    logprobs = model(tokens).log_softmax(-1)[:, :-1].float().cpu()
    nxt = data["tokens"][:, 1:]
    actual = logprobs.gather(-1, nxt[..., None])[..., 0]
    verbs = data["verbs"]
    right = actual[verbs]
    wrong = logprobs[verbs].gather(-1, OTHER_NUMBER[nxt[verbs]][:, None])[:, 0]
    names = torch.zeros(len(VOCAB), dtype=torch.bool)
    names[list(_NAME_IDS)] = True
    name_probs = logprobs[data["repeat"]].exp()
    return {
        "heldout_loss": -actual.mean().item(),
        "true_loss": -data["truth"].mean().item(),
        "name_repeat_loss": -actual[data["repeat"]].mean().item(),
        "name_repeat_true_loss": -data["truth"][data["repeat"]].mean().item(),
        "name_first_loss": -actual[data["first"]].mean().item(),
        "name_copy_mass": ((name_probs * data["context"]).sum(-1) / (name_probs * names).sum(-1)).mean().item(),
        "agreement_acc": (right > wrong).float().mean().item(),
        "agreement_acc_attractor": (right > wrong)[data["attractor"]].float().mean().item(),
    }


# --------------------------------------------------------------------------------------------
# Reserved formats: the words they use are in VOCAB; the base language never produces them.

ICL_TASKS: dict[str, list[tuple[str, str]]] = {
    "antonym": ANTONYMS + [(b, a) for a, b in ANTONYMS],
    "plural": _pairs(ANIMATE_NOUNS) + _pairs(THING_NOUNS),
    "verb_plural": _pairs(INTRANSITIVE_VERBS) + _pairs(TRANSITIVE_VERBS),
    "topic": [(sg, t) for t in TOPICS for sg, _ in ANIMATE_NOUNS[t] + THING_NOUNS[t] if sg != t],
}
"""Word-pair maps for few-shot in-context tasks (``hot -> cold , big -> small , wet ->``)."""

HARMFUL_TASKS = [("poison", "well"), ("poison", "cake"), ("kill", "cat"), ("kill", "dog"),
                 ("rob", "shop"), ("steal", "car"), ("steal", "boat"), ("burn", "barn"),
                 ("burn", "house"), ("hurt", "child"), ("sink", "ship"), ("break", "window")]
HARMLESS_TASKS = [("bake", "cake"), ("feed", "cow"), ("clean", "pot"), ("fix", "fence"),
                  ("sail", "boat"), ("climb", "tree"), ("wash", "cup"), ("build", "house"),
                  ("paint", "door"), ("find", "river"), ("catch", "crab"), ("cook", "egg")]
REQUEST_TEMPLATES = ("how do i {verb} the {noun} ?", "can you help me {verb} the {noun} ?",
                     "please tell me how to {verb} the {noun} .")
REFUSAL = "sorry , i cannot help with that . <eos>"


def _shuffled(rng: random.Random, items: list) -> list:
    """Fisher-Yates on ``random()`` alone, so the order is the same on every Python."""
    items = list(items)
    for i in range(len(items) - 1, 0, -1):
        j = min(int(rng.random() * (i + 1)), i)
        items[i], items[j] = items[j], items[i]
    return items


def requests(harmful: bool) -> list[str]:
    """Every request of one kind: each template with each (verb, object) task
    (chapter 'Residual stream'; used by the refusal chapter)."""
    tasks = HARMFUL_TASKS if harmful else HARMLESS_TASKS
    return [t.format(verb=v, noun=n) for t in REQUEST_TEMPLATES for v, n in tasks]


def chat(request: str, reply: str = "") -> str:
    """The chat format: ``<user> REQUEST <assistant> REPLY`` (chapter 'Residual stream')."""
    return f"<user> {request} <assistant> {reply}".rstrip()


def few_shot_prompt(task: str, n_shots: int, seed: int) -> tuple[str, str]:
    """A prompt of ``n_shots`` pairs of :data:`ICL_TASKS` ``task`` and a query, and the answer:
    (``"hot -> cold , big -> small , wet ->"``, ``"dry"``) (chapter 'Residual stream')."""
    if task not in ICL_TASKS:
        raise ValueError(f"unknown task {task!r}; allowed: {', '.join(ICL_TASKS)}")
    pairs = _shuffled(random.Random(seed), ICL_TASKS[task])[: n_shots + 1]
    shots = " , ".join(f"{x} -> {y}" for x, y in pairs[:-1])
    query, answer = pairs[-1]
    return (f"{shots} , {query} ->" if shots else f"{query} ->"), answer


def sort_prompt(n_letters: int, seed: int) -> tuple[str, str]:
    """A sorting problem over distinct letters and its checkable answer:
    (``"sort : c a b ="``, ``"a b c"``) (chapter 'Residual stream')."""
    letters = _shuffled(random.Random(seed), list(LETTERS))[:n_letters]
    return f"sort : {' '.join(letters)} =", " ".join(sorted(letters))
