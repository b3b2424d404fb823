"""``python -m soundalert``: the same as the ``soundalert`` command."""

from soundalert.cli import main

main()
