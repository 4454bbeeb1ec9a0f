"""``python -m producer`` is the ``videofleet`` command."""

from producer.cli import main

main()
