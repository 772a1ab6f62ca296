"""Settings every test module shares: the Hypothesis profiles.

``HYPOTHESIS_PROFILE`` picks one; the default, ``ci``, is derandomized: the same
examples every run, so a CI run fails only for a change to the code, never for a new
draw. ``fuzz`` (``nox -s fuzz``) explores at random, many more examples. Failing
examples are saved in ``.hypothesis/`` (git-ignored by Hypothesis itself), and the next
run tries them first.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", max_examples=200, deadline=None, print_blob=True, derandomize=True)
settings.register_profile("fuzz", max_examples=20_000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
