"""``python -m trioweb module:app ...``: the same as the ``trioweb`` command."""

from ._cli import main

main()
