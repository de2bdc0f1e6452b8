"""``python -m seemore.train``."""

from seemore.train.cli import main

raise SystemExit(main())
