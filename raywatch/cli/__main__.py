"""``python -m raywatch.cli``: the same as the ``raywatch`` command."""

from raywatch.cli import main

if __name__ == "__main__":
    main()
