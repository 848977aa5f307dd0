"""``python -m tokenscale_sim.cli ...``: the ``tokenscale`` command."""

import sys

from tokenscale_sim.cli import main

sys.exit(main())
