"""Word-pair tasks of the in-context-learning literature, as small word lists written for the
book, for running the task-vectors chapter on a real model by ``MODEL_NAME``.

Hendel et al. (2023) and Todd et al. (2024) evaluate on antonyms, country-capital, translation,
tense and number; the lists here are short (25-35 pairs each) and make no claim to be theirs.
Both methods score the first answer token, and the book keeps queries to one token too (so every
prompt of a task has one length and needs no padding): :func:`single_token_pairs` keeps, per
tokenizer, the pairs whose query and answer are each one token where the prompt puts them (after
a space), and says what it dropped. Introduced in chapter 'Task vectors' (chapters/task_vectors.py).
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase


def _pairs(text: str) -> list[tuple[str, str]]:
    """``"a:b c:d"`` -> ``[("a", "b"), ("c", "d")]``."""
    return [tuple(item.split(":")) for item in text.split()]  # type: ignore[misc]


WORD_TASKS: dict[str, list[tuple[str, str]]] = {
    "antonym": _pairs(
        "hot:cold big:small old:young happy:sad fast:slow dark:light wet:dry loud:quiet tall:short "
        "good:bad full:empty rich:poor strong:weak soft:hard heavy:light early:late open:closed "
        "high:low long:short thick:thin clean:dirty new:old true:false cheap:expensive "
        "inside:outside up:down left:right black:white first:last win:lose buy:sell push:pull "
        "add:remove love:hate always:never"
    ),
    "country_capital": _pairs(
        "France:Paris Germany:Berlin Italy:Rome Spain:Madrid Japan:Tokyo China:Beijing "
        "Russia:Moscow Egypt:Cairo Greece:Athens Canada:Ottawa Kenya:Nairobi Peru:Lima "
        "Cuba:Havana Norway:Oslo Sweden:Stockholm Poland:Warsaw Austria:Vienna Ireland:Dublin "
        "Portugal:Lisbon Hungary:Budapest Chile:Santiago Iran:Tehran Iraq:Baghdad Syria:Damascus "
        "Thailand:Bangkok Vietnam:Hanoi England:London Denmark:Copenhagen Finland:Helsinki "
        "Turkey:Ankara Belgium:Brussels Argentina:Buenos Colombia:Bogota Venezuela:Caracas"
    ),
    "english_spanish": _pairs(
        "dog:perro cat:gato house:casa water:agua book:libro man:hombre woman:mujer sun:sol "
        "moon:luna day:dia night:noche city:ciudad friend:amigo hand:mano time:tiempo world:mundo "
        "life:vida love:amor school:escuela car:coche tree:arbol red:rojo green:verde black:negro "
        "white:blanco one:uno two:dos three:tres four:cuatro five:cinco good:bueno new:nuevo "
        "big:grande bread:pan milk:leche"
    ),
    "english_french": _pairs(
        "dog:chien cat:chat house:maison water:eau book:livre man:homme woman:femme sun:soleil "
        "moon:lune day:jour night:nuit city:ville friend:ami hand:main time:temps world:monde "
        "life:vie love:amour school:ecole car:voiture tree:arbre red:rouge green:vert black:noir "
        "white:blanc one:un two:deux three:trois four:quatre five:cinq good:bon new:nouveau "
        "big:grand bread:pain milk:lait"
    ),
    "present_past": _pairs(
        "go:went see:saw eat:ate run:ran take:took give:gave come:came write:wrote speak:spoke "
        "drink:drank sing:sang swim:swam begin:began break:broke choose:chose drive:drove fly:flew "
        "forget:forgot freeze:froze grow:grew know:knew ride:rode rise:rose steal:stole throw:threw "
        "wear:wore walk:walked play:played jump:jumped talk:talked open:opened help:helped "
        "work:worked call:called"
    ),
    "singular_plural": _pairs(
        "dog:dogs cat:cats house:houses car:cars tree:trees book:books bird:birds girl:girls "
        "boy:boys game:games child:children man:men woman:women mouse:mice foot:feet tooth:teeth "
        "city:cities baby:babies box:boxes bus:buses knife:knives leaf:leaves wolf:wolves "
        "story:stories party:parties country:countries church:churches watch:watches hand:hands "
        "year:years day:days friend:friends river:rivers"
    ),
    "capitalize": _pairs(
        "apple:Apple river:River house:House music:Music table:Table window:Window garden:Garden "
        "paper:Paper water:Water money:Money story:Story market:Market power:Power light:Light "
        "world:World school:School family:Family country:Country people:People history:History "
        "church:Church office:Office summer:Summer winter:Winter island:Island mountain:Mountain "
        "forest:Forest street:Street silver:Silver golden:Golden"
    ),
    "next_letter": _pairs(
        "a:b b:c c:d d:e e:f f:g g:h h:i i:j j:k k:l l:m m:n n:o o:p p:q q:r r:s s:t t:u u:v v:w w:x x:y y:z"
    ),
}
"""Task name -> (query, answer) pairs."""


def single_token_pairs(
    tokenizer: PreTrainedTokenizerBase, pairs: list[tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The pairs whose query and answer are each one token of ``tokenizer`` after a space, as the
    prompt puts them (so every prompt of a task has the same length and needs no padding), and
    the pairs that are not."""

    def one_token(word: str) -> bool:
        return len(tokenizer(" " + word, add_special_tokens=False)["input_ids"]) == 1

    single = [one_token(x) and one_token(y) for x, y in pairs]
    return [p for p, one in zip(pairs, single) if one], [p for p, one in zip(pairs, single) if not one]
