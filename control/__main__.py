"""`python -m control` is `gradq`."""

from control.cli import main

main()
