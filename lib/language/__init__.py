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
- **repetition**: a sentence may be ``again ,`` followed by an earlier sentence of the text word
  for word (:data:`P_AGAIN`), as when a character repeats what was said: from its second word
  on, the copy is predictable only by finding the earlier occurrence, as induction heads do;
- after at least :data:`MIN_SENTENCES` sentences the text may end: the program then emits
  ``<bos>``, which starts the next text when texts are packed into rows.

A row of the training stream is, with probability :data:`P_RANDOM_ROW`, instead ``<bos>`` and
``N`` random words of the language (``N`` uniform in :data:`RANDOM_PERIOD`) repeated to fill the
row, the copying task of the induction literature; the ``span`` latent says which tokens were
copied.

The grammar is unambiguous left to right: every token determines which branch of the program
produced it, so the program's state after a prefix is a function of the prefix and the topic.
That makes the exact next-token distribution computable (:func:`true_next_token_logprobs`,
:func:`true_next_token_probs`): the program's copies are distributions over the earlier
sentences that agree with the copy so far, and the row's kind and a random row's period are
marginalised exactly like the topic. The vocabulary (:data:`VOCAB`) also reserves the tokens of
formats that later organisms are fine-tuned on: a chat format with harmless and harmful requests
and a refusal, few-shot word-pair tasks, and a sorting task.

One concept per module, every public name re-exported here (``from lib import language``, then
``language.VOCAB``, ``language.sample_corpus``, ...):

- :mod:`lib.language.lexicon`: the word lists, :data:`VOCAB` and the token ids, per-id tables;
- :mod:`lib.language.latents`: the latents' names and the meaning of their values;
- :mod:`lib.language.program`: the generative program and the probabilities of its choices;
- :mod:`lib.language.corpus`: sampled rows with their latents, and the training stream;
- :mod:`lib.language.exact`: the exact next-token distribution;
- :mod:`lib.language.evaluation`: agreement sites and a model's metrics on held-out rows;
- :mod:`lib.language.formats`: the reserved chat, few-shot and sorting formats;
- :mod:`lib.language.chat`: the chat organism's requests, harmfulness rule, replies and held-out
  combinations;
- :mod:`lib.language.fewshot`: the few-shot organism's prompts and the pairs it never trains on;
- :mod:`lib.language.sorting`: the sorting organism's problems, the problems it never trains on,
  and its training stream;
- :mod:`lib.language.tokenization`: the language's tokenizer, and whether a model speaks it.
"""

from lib.language.chat import (
    ANSWER_TEMPLATES,
    COMPLY,
    DAMAGING_VERBS,
    FOOD,
    HARMFUL_TASKS,
    HARMLESS_TASKS,
    HOLDOUT_STRIDE,
    LIVING,
    NATURE,
    OBJECTS,
    ORDINARY_VERBS,
    P_BASE_ROW,
    PROPERTY,
    TOOLS,
    VERBS,
    chat_batches,
    is_harmful,
    is_held_out,
    reply,
    request,
    requests,
    sample_requests,
    tasks,
)
from lib.language.corpus import Corpus, batches, sample_corpus
from lib.language.evaluation import EVAL_BATCH, EVAL_SEED, agreement_sites, evaluate
from lib.language.exact import (
    continuation_topic_posterior,
    topic_posterior,
    true_next_token_logprobs,
    true_next_token_probs,
)
from lib.language.fewshot import fewshot_batches
from lib.language.formats import (
    ICL_TASKS,
    REFUSAL,
    REQUEST_TEMPLATES,
    IclTask,
    chat,
    few_shot,
    few_shot_prompt,
    sort_problem,
    sort_prompt,
)
from lib.language.latents import (
    LATENTS,
    MENTIONS,
    NUMBERS,
    ROLES,
    SPANS,
    LatentName,
    Mention,
    Number,
    Role,
    Span,
)
from lib.language.lexicon import (
    ADJECTIVES,
    ANIMATE_NOUNS,
    ANTONYMS,
    BOS_ID,
    CHAT_WORDS,
    CONJUNCTIONS,
    COPULA,
    DETERMINERS,
    FUNCTION_WORDS,
    ID,
    INTRANSITIVE_VERBS,
    LETTERS,
    NAMES,
    OPENERS,
    OTHER_NUMBER,
    PREPOSITIONS,
    PUNCTUATION,
    SHARED,
    SPECIALS,
    TASK_WORDS,
    THING_NOUNS,
    TOPICS,
    TRANSITIVE_VERBS,
    VOCAB,
    WORD_CLASS_OF,
    WORD_CLASSES,
    WORD_IDS,
    Topic,
    WordClass,
)
from lib.language.program import (
    KIND_BOOST,
    MAX_SENTENCES,
    MIN_SENTENCES,
    P_ADJECTIVE,
    P_AGAIN,
    P_AND,
    P_COORDINATE,
    P_END,
    P_INTRO,
    P_NAME_SUBJECT,
    P_OBJECT_NAME,
    P_OPENER,
    P_PLACE,
    P_PREDICATE,
    P_RANDOM_ROW,
    P_SINGULAR,
    P_SUBJECT_PP,
    RANDOM_PERIOD,
    TOPIC_SHARE,
)
from lib.language.tokenization import retokenize, speaks_language, tokenizer

__all__ = [
    # lexicon
    "Topic",
    "TOPICS",
    "SHARED",
    "ANIMATE_NOUNS",
    "THING_NOUNS",
    "INTRANSITIVE_VERBS",
    "TRANSITIVE_VERBS",
    "COPULA",
    "ANTONYMS",
    "ADJECTIVES",
    "NAMES",
    "DETERMINERS",
    "PREPOSITIONS",
    "OPENERS",
    "CONJUNCTIONS",
    "FUNCTION_WORDS",
    "SPECIALS",
    "PUNCTUATION",
    "CHAT_WORDS",
    "TASK_WORDS",
    "LETTERS",
    "VOCAB",
    "ID",
    "BOS_ID",
    "WordClass",
    "WORD_CLASSES",
    "WORD_CLASS_OF",
    "WORD_IDS",
    "OTHER_NUMBER",
    # latents
    "Role",
    "ROLES",
    "Number",
    "NUMBERS",
    "Mention",
    "MENTIONS",
    "Span",
    "SPANS",
    "LatentName",
    "LATENTS",
    # program
    "P_RANDOM_ROW",
    "RANDOM_PERIOD",
    "MIN_SENTENCES",
    "MAX_SENTENCES",
    "P_END",
    "P_INTRO",
    "P_OPENER",
    "P_AGAIN",
    "P_NAME_SUBJECT",
    "P_AND",
    "P_SUBJECT_PP",
    "P_PREDICATE",
    "P_ADJECTIVE",
    "P_SINGULAR",
    "P_OBJECT_NAME",
    "P_PLACE",
    "P_COORDINATE",
    "TOPIC_SHARE",
    "KIND_BOOST",
    # corpus, exact, evaluation
    "Corpus",
    "sample_corpus",
    "batches",
    "true_next_token_logprobs",
    "true_next_token_probs",
    "continuation_topic_posterior",
    "topic_posterior",
    "EVAL_SEED",
    "EVAL_BATCH",
    "agreement_sites",
    "evaluate",
    # formats
    "IclTask",
    "ICL_TASKS",
    "REQUEST_TEMPLATES",
    "REFUSAL",
    "chat",
    "few_shot",
    "few_shot_prompt",
    "fewshot_batches",
    "sort_problem",
    "sort_prompt",
    # chat
    "DAMAGING_VERBS",
    "ORDINARY_VERBS",
    "VERBS",
    "LIVING",
    "PROPERTY",
    "FOOD",
    "NATURE",
    "OBJECTS",
    "ANSWER_TEMPLATES",
    "TOOLS",
    "COMPLY",
    "HOLDOUT_STRIDE",
    "P_BASE_ROW",
    "HARMFUL_TASKS",
    "HARMLESS_TASKS",
    "is_harmful",
    "is_held_out",
    "tasks",
    "request",
    "requests",
    "reply",
    "sample_requests",
    "chat_batches",
    # tokenization
    "tokenizer",
    "retokenize",
    "speaks_language",
]
