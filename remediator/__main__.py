"""``python -m remediator``: the same as the ``remediator`` command."""

from remediator.cli import main

raise SystemExit(main())
