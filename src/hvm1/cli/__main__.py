"""`python -m hvm1.cli` (and `torchrun -m hvm1.cli`): the `hvm1` command."""

import sys

from . import console

sys.exit(console())
