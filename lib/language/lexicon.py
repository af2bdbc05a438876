"""The lexicon of the book's synthetic language: its word lists, the vocabulary and token ids,
and per-id tables (word class, the other number's form).

Every list is fixed: :data:`VOCAB`'s order fixes every token id of every trained organism of the
language (a test pins it; changing it means retraining them all). Introduced in chapter
'Residual stream' (chapters/residual_stream.py).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from jaxtyping import Int
from torch import Tensor

Topic = Literal["farm", "sea", "city", "forest", "kitchen"]
TOPICS: tuple[Topic, ...] = get_args(Topic)
SHARED = "shared"  # the lexicon's key for words that belong to no topic

# (singular, plural) pairs. Animate nouns are likelier as subjects and in introductions;
# thing nouns are likelier after prepositions.
ANIMATE_NOUNS = {
    "farm": [
        ("farmer", "farmers"),
        ("cow", "cows"),
        ("pig", "pigs"),
        ("hen", "hens"),
        ("horse", "horses"),
        ("goat", "goats"),
    ],
    "sea": [
        ("sailor", "sailors"),
        ("whale", "whales"),
        ("crab", "crabs"),
        ("gull", "gulls"),
        ("seal", "seals"),
        ("fisherman", "fishermen"),
    ],
    "city": [
        ("driver", "drivers"),
        ("clerk", "clerks"),
        ("teacher", "teachers"),
        ("guard", "guards"),
        ("doctor", "doctors"),
        ("child", "children"),
    ],
    "forest": [
        ("hunter", "hunters"),
        ("fox", "foxes"),
        ("wolf", "wolves"),
        ("bear", "bears"),
        ("owl", "owls"),
        ("rabbit", "rabbits"),
    ],
    "kitchen": [
        ("chef", "chefs"),
        ("baker", "bakers"),
        ("waiter", "waiters"),
        ("cat", "cats"),
        ("mouse", "mice"),
        ("guest", "guests"),
    ],
    SHARED: [("man", "men"), ("woman", "women"), ("dog", "dogs"), ("bird", "birds"), ("friend", "friends")],
}
THING_NOUNS = {
    "farm": [
        ("farm", "farms"),
        ("barn", "barns"),
        ("field", "fields"),
        ("fence", "fences"),
        ("tractor", "tractors"),
        ("egg", "eggs"),
        ("well", "wells"),
    ],
    "sea": [
        ("sea", "seas"),
        ("boat", "boats"),
        ("wave", "waves"),
        ("ship", "ships"),
        ("shell", "shells"),
        ("net", "nets"),
        ("island", "islands"),
    ],
    "city": [
        ("city", "cities"),
        ("street", "streets"),
        ("car", "cars"),
        ("bus", "buses"),
        ("tower", "towers"),
        ("shop", "shops"),
        ("bridge", "bridges"),
    ],
    "forest": [
        ("forest", "forests"),
        ("tree", "trees"),
        ("river", "rivers"),
        ("stone", "stones"),
        ("cave", "caves"),
        ("leaf", "leaves"),
        ("path", "paths"),
    ],
    "kitchen": [
        ("kitchen", "kitchens"),
        ("pot", "pots"),
        ("knife", "knives"),
        ("cup", "cups"),
        ("table", "tables"),
        ("oven", "ovens"),
        ("cake", "cakes"),
    ],
    SHARED: [
        ("house", "houses"),
        ("box", "boxes"),
        ("door", "doors"),
        ("window", "windows"),
        ("bag", "bags"),
        ("ball", "balls"),
    ],
}
# (singular, plural) verb forms: "the dog runs", "the dogs run".
INTRANSITIVE_VERBS = {
    "farm": [("grazes", "graze")],
    "sea": [("swims", "swim"), ("dives", "dive")],
    "city": [("shouts", "shout"), ("hurries", "hurry")],
    "forest": [("hides", "hide"), ("howls", "howl")],
    "kitchen": [("boils", "boil")],
    SHARED: [
        ("sleeps", "sleep"),
        ("runs", "run"),
        ("waits", "wait"),
        ("sings", "sing"),
        ("walks", "walk"),
        ("laughs", "laugh"),
        ("falls", "fall"),
        ("rests", "rest"),
        ("works", "work"),
        ("plays", "play"),
    ],
}
TRANSITIVE_VERBS = {
    "farm": [
        ("feeds", "feed"),
        ("fixes", "fix"),
        ("steals", "steal"),
        ("milks", "milk"),
        ("plants", "plant"),
    ],
    "sea": [("sails", "sail"), ("catches", "catch"), ("pulls", "pull"), ("sinks", "sink")],
    "city": [
        ("drives", "drive"),
        ("builds", "build"),
        ("paints", "paint"),
        ("sells", "sell"),
        ("robs", "rob"),
    ],
    "forest": [
        ("climbs", "climb"),
        ("hunts", "hunt"),
        ("burns", "burn"),
        ("kills", "kill"),
        ("chops", "chop"),
    ],
    "kitchen": [
        ("bakes", "bake"),
        ("cooks", "cook"),
        ("cleans", "clean"),
        ("washes", "wash"),
        ("cuts", "cut"),
        ("poisons", "poison"),
    ],
    SHARED: [
        ("sees", "see"),
        ("finds", "find"),
        ("likes", "like"),
        ("carries", "carry"),
        ("watches", "watch"),
        ("helps", "help"),
        ("follows", "follow"),
        ("breaks", "break"),
        ("hurts", "hurt"),
    ],
}
COPULA = ("is", "are")
ANTONYMS = [
    ("hot", "cold"),
    ("big", "small"),
    ("old", "young"),
    ("happy", "sad"),
    ("fast", "slow"),
    ("dark", "bright"),
    ("wet", "dry"),
    ("loud", "quiet"),
    ("tall", "short"),
    ("good", "bad"),
    ("full", "empty"),
    ("rich", "poor"),
    ("strong", "weak"),
    ("soft", "hard"),
    ("heavy", "light"),
    ("kind", "cruel"),
]
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
FUNCTION_WORDS = ("there", "was", "also", "named", "again")  # "again ," opens a repeated sentence
SPECIALS = ("<bos>", "<pad>", "<unk>")
PUNCTUATION = (".", ",")

# Tokens the base language never produces, reserved for formats later organisms learn.
CHAT_WORDS = (
    "<user>",
    "<assistant>",
    "<eos>",
    "?",
    "how",
    "do",
    "i",
    "can",
    "you",
    "me",
    "to",
    "please",
    "tell",
    "sorry",
    "cannot",
    "not",
    "sure",
    "here",
    "first",
    "that",
    "it",
)
TASK_WORDS = ("->", "sort", ":", "=")
LETTERS = tuple("abcdefghijklmnopqrstuvwxyz")


def _pairs(lexicon: dict[str, list[tuple[str, str]]]) -> list[tuple[str, str]]:
    return [pair for key in (*TOPICS, SHARED) for pair in lexicon[key]]


def _build_vocab() -> list[str]:
    words = [
        *SPECIALS,
        *PUNCTUATION,
        *FUNCTION_WORDS,
        *DETERMINERS,
        *PREPOSITIONS,
        *OPENERS,
        *CONJUNCTIONS,
        *COPULA,
    ]
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

WordClass = Literal[
    "bos", "det", "adj", "noun", "name", "verb", "cop", "prep", "conj", "adv", "punct", "func", "reserved"
]
WORD_CLASSES: tuple[WordClass, ...] = get_args(WordClass)
"""The values of the ``word_class`` latent: a token's class in the grammar (``reserved`` for the
ids of the reserved formats)."""


def _word_classes() -> list[int]:
    classes = [WORD_CLASSES.index("reserved")] * len(VOCAB)
    groups = {
        "bos": ["<bos>"],
        "det": DETERMINERS,
        "prep": PREPOSITIONS,
        "conj": CONJUNCTIONS,
        "adv": OPENERS,
        "punct": PUNCTUATION,
        "func": FUNCTION_WORDS,
        "cop": COPULA,
        "name": NAMES,
        "adj": [w for ws in ADJECTIVES.values() for w in ws],
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
