"""Reading inputs: one reader for every array format, activation layers and gradient files.

- :mod:`repsim_cli.io.arrays` -- the single reader (HDF5, .npy, .npz; formats register here);
- :mod:`repsim_cli.io.layers` -- activation layers: selectors, pooling, row subsets, validation;
- :mod:`repsim_cli.io.gradients` -- per-example gradient datasets for ``inputsim``;
- :mod:`repsim_cli.io.sources` -- in-memory inputs (arrays, tensors, mappings) for the Python API.
"""
