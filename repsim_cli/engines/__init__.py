"""Engines: what to compute, in which order, reusing work -- between the readers and the results.

- :mod:`repsim_cli.engines.compare` -- layer pairs, loading once, records with nulls;
- :mod:`repsim_cli.engines.streaming` -- linear CKA from files larger than memory;
- :mod:`repsim_cli.engines.grid` -- layer x layer grids with work done once per layer;
- :mod:`repsim_cli.engines.group` -- the across-seeds group test on files or arrays;
- :mod:`repsim_cli.engines.inputsim` -- the gradient-cosine kernel, pass by pass.

Engines never print; progress is reported through callbacks.
"""
