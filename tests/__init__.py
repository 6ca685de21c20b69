"""The tests of causal-xai (``pytest -n 2``, README "Quick start").

Under ``pytest -n 2`` two test processes share the machine's cores and each snakemake the
workflow tests start runs its jobs on ``--cores 2``: more busy threads than cores. torch's
OpenMP threads spin between parallel regions by default (libgomp's ``OMP_WAIT_POLICY`` unset),
and on a shared core that spinning takes the time the other process needs: the tiny config
beside one busy core took 6:35 (454 CPU-s) with the default policy and 4:28 (295 CPU-s) with
``PASSIVE``; alone, 3:37 and 3:40. The policy only says how idle threads wait, never what is
computed, so the numbers are the same. It is set here, before any test module imports torch,
and every snakemake the tests start inherits it.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
