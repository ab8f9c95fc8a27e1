"""``python -m edgegen`` is the ``edgegen`` command."""

from edgegen.cli.app import main

if __name__ == "__main__":
    main()
