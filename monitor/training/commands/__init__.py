"""The training commands behind scripts/: each module parses its arguments and calls the training library.

`main(argv)` returns the exit status, so a test calls a command as the script runs it: `main(["--help"])`.
"""
