"""One module per organism, each defining ``RECIPE`` (see :mod:`lib.zoo.registry`)."""
