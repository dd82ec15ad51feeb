"""`python -m bpfbuild`: the same as the `bpfbuild` command."""

from __future__ import annotations

import sys

from .launcher import main

sys.exit(main())
