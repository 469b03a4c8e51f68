"""``python -m orderguard``: the same as the ``orderguard`` command."""

from orderguard.cli import main

main()
