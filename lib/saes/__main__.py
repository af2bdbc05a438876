"""``python -m lib.saes`` retrains the zoo's SAEs of the language organism (lib.saes.artifacts)."""

from lib.saes.artifacts import main

main()
