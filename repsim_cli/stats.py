"""Statistics: permutation nulls, bootstrap intervals and the across-seeds group test.

Pure functions, no printing. Every random choice comes from ``numpy.random.Generator``
seeded by the caller's ``seed`` (child seeds spawned with ``SeedSequence``), never global state.
"""

from __future__ import annotations
