"""Run the `weerbaar` command line as `python -m monitor`."""

from .cli import main

main()
