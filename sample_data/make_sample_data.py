#!/usr/bin/env python
"""Generate the deterministic sample data shipped with repsim.

Trains small multi-layer perceptrons on the 8x8 digits data set
(``sklearn.datasets.load_digits``; scikit-learn is used for nothing else)
with plain numpy (float64, Adam, softmax cross-entropy) and writes, for a
fixed set of held-out inputs:

* ``mlp_seed{0,1,2}.h5``  -- 64-128-128-64-10 ReLU MLP, hidden activations
* ``wide_seed{0,1}.h5``   -- 64-256-64-32-10 tanh MLP, hidden activations
* ``grads.h5``            -- 64-32-10 ReLU MLP, per-example gradients of the
                             true-class logit w.r.t. all parameters
                             (for input similarity, Charpiat et al. 2019)

Everything is a pure function of the fixed seeds below: running the script
twice gives identical arrays (BLAS is pinned to one thread so that matrix
products are reduced in the same order every run).  See README.md in this
folder for the file layout.

Usage::

    python sample_data/make_sample_data.py [--out DIR]
"""

import os

# Pin BLAS to a single thread *before* numpy is imported: multi-threaded
# GEMM may split reductions differently from run to run / machine to machine.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
             "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402

GENERATOR = "sample_data/make_sample_data.py"

SPLIT_SEED = 20190101      # seed of the train / held-out permutation
N_HELDOUT = 500            # held-out inputs (same order in every file)
N_GRAD = 200               # examples per gradient matrix

# Training hyper-parameters (shared by all networks).
EPOCHS = 60
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8

ARCHITECTURES = {
    # name: (layer widths incl. input and output, hidden nonlinearity)
    "mlp": ((64, 128, 128, 64, 10), "relu"),
    "wide": ((64, 256, 64, 32, 10), "tanh"),
    "grad_mlp": ((64, 32, 10), "relu"),
}
ACTIVATION_RUNS = [("mlp", 0), ("mlp", 1), ("mlp", 2),
                   ("wide", 0), ("wide", 1)]
GRAD_ARCH, GRAD_SEED = "grad_mlp", 0

COMPRESSION = dict(compression="gzip", compression_opts=9, shuffle=True)


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------

def load_split():
    """Fixed deterministic split of load_digits into train / held-out.

    Returns (x_train, y_train, x_heldout, y_heldout); inputs are float64 in
    [0, 1] (pixel values divided by 16), labels int64.
    """
    from sklearn.datasets import load_digits  # only use of scikit-learn

    digits = load_digits()
    x = np.asarray(digits.data, dtype=np.float64) / 16.0
    y = np.asarray(digits.target, dtype=np.int64)
    assert x.shape == (1797, 64), x.shape
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    held, train = perm[:N_HELDOUT], perm[N_HELDOUT:]
    return x[train], y[train], x[held], y[held]


# --------------------------------------------------------------------------
# network
# --------------------------------------------------------------------------

def _act(name, z):
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    raise ValueError(name)


def _act_grad(name, z, a):
    """Derivative of the nonlinearity given pre-activation z, output a."""
    if name == "relu":
        return (z > 0.0).astype(z.dtype)
    if name == "tanh":
        return 1.0 - a * a
    raise ValueError(name)


def init_params(widths, act, rng):
    """He (ReLU) / Glorot (tanh) normal init; biases zero.  W has shape
    (fan_in, fan_out) and the forward pass is ``x @ W + b``."""
    params = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        if act == "relu":
            std = np.sqrt(2.0 / fan_in)
        else:
            std = np.sqrt(2.0 / (fan_in + fan_out))
        params.append(rng.standard_normal((fan_in, fan_out)) * std)
        params.append(np.zeros(fan_out))
    return params


def forward(params, x, act):
    """Returns (pre-activations, post-activations of hidden layers, logits)."""
    zs, hs = [], []
    h = x
    n_layers = len(params) // 2
    for i in range(n_layers):
        z = h @ params[2 * i] + params[2 * i + 1]
        if i == n_layers - 1:
            return zs, hs, z
        h = _act(act, z)
        zs.append(z)
        hs.append(h)
    raise AssertionError("unreachable")


def loss_and_grads(params, x, y, act):
    """Mean softmax cross-entropy and its gradient (hand-written backprop)."""
    zs, hs, logits = forward(params, x, act)
    n = len(x)
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -logp[np.arange(n), y].mean()
    delta = np.exp(logp)
    delta[np.arange(n), y] -= 1.0
    delta /= n                                   # dL/dlogits
    grads = [None] * len(params)
    inputs = [x] + hs
    for i in range(len(params) // 2 - 1, -1, -1):
        grads[2 * i] = inputs[i].T @ delta
        grads[2 * i + 1] = delta.sum(axis=0)
        if i > 0:
            delta = (delta @ params[2 * i].T) * _act_grad(act, zs[i - 1],
                                                          hs[i - 1])
    return loss, grads


def accuracy(params, x, y, act):
    return float((forward(params, x, act)[2].argmax(axis=1) == y).mean())


def train(arch, seed, x_train, y_train):
    """Adam on softmax cross-entropy; all randomness from default_rng(seed)."""
    widths, act = ARCHITECTURES[arch]
    rng = np.random.default_rng(seed)
    params = init_params(widths, act, rng)
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    b1, b2 = ADAM_BETAS
    step = 0
    n = len(x_train)
    for _epoch in range(EPOCHS):
        order = rng.permutation(n)
        for start in range(0, n, BATCH_SIZE):
            idx = order[start:start + BATCH_SIZE]
            _, grads = loss_and_grads(params, x_train[idx], y_train[idx], act)
            step += 1
            c1 = 1.0 - b1 ** step
            c2 = 1.0 - b2 ** step
            for p, g, mi, vi in zip(params, grads, m, v):
                mi *= b1
                mi += (1.0 - b1) * g
                vi *= b2
                vi += (1.0 - b2) * g * g
                p -= LEARNING_RATE * (mi / c1) / (np.sqrt(vi / c2) + ADAM_EPS)
    return params


# --------------------------------------------------------------------------
# per-example gradients of the true-class logit (one hidden layer, ReLU)
# --------------------------------------------------------------------------

PARAM_NAMES = ("W1", "b1", "W2", "b2")


def flatten(params):
    return np.concatenate([p.ravel() for p in params])


def unflatten(flat, like):
    out, off = [], 0
    for p in like:
        out.append(flat[off:off + p.size].reshape(p.shape))
        off += p.size
    assert off == flat.size
    return out


def true_class_logit(params, x, y):
    """logit_{y_i}(x_i) for each row; network relu(x@W1+b1)@W2+b2."""
    W1, b1, W2, b2 = params
    logits = np.maximum(x @ W1 + b1, 0.0) @ W2 + b2
    return logits[np.arange(len(x)), y]


def per_example_logit_grads(params, x, y):
    """Analytic d logit_{y_i}(x_i) / d theta for each example i.

    Returns an (N, P) float64 array, columns ordered W1, b1, W2, b2, each
    flattened in C order (W1 is (64, 32): index [i, j] -> column i*32 + j).
    """
    W1, b1, W2, b2 = params
    n = len(x)
    z1 = x @ W1 + b1                        # (N, H)
    h = np.maximum(z1, 0.0)
    onehot = np.zeros((n, W2.shape[1]))
    onehot[np.arange(n), y] = 1.0           # d logit_y / d logits
    g_b2 = onehot                           # (N, C)
    g_W2 = h[:, :, None] * onehot[:, None, :]          # (N, H, C)
    g_h = W2.T[y]                           # (N, H) = W2[:, y_i]
    g_z1 = g_h * (z1 > 0.0)
    g_b1 = g_z1                             # (N, H)
    g_W1 = x[:, :, None] * g_z1[:, None, :]            # (N, D, H)
    return np.concatenate([g_W1.reshape(n, -1), g_b1,
                           g_W2.reshape(n, -1), g_b2], axis=1)


def check_against_finite_differences(params, x, y, eps=1e-6, tol=1e-5):
    """Central finite differences over every parameter for each row of x."""
    flat = flatten(params)
    analytic = per_example_logit_grads(params, x, y)
    worst = 0.0
    for i in range(len(x)):
        xi, yi = x[i:i + 1], y[i:i + 1]
        fd = np.empty_like(flat)
        for k in range(flat.size):
            plus, minus = flat.copy(), flat.copy()
            plus[k] += eps
            minus[k] -= eps
            fd[k] = (true_class_logit(unflatten(plus, params), xi, yi)[0]
                     - true_class_logit(unflatten(minus, params), xi, yi)[0]
                     ) / (2.0 * eps)
        rel = np.linalg.norm(fd - analytic[i]) / max(
            np.linalg.norm(fd), np.linalg.norm(analytic[i]), 1e-300)
        assert rel < tol, f"gradient check failed: rel. error {rel:.3e}"
        worst = max(worst, rel)
    return worst


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------

def atomic_h5(path, fill):
    """Write an HDF5 file via a temp file in the same folder + os.replace."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder,
                               prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            fill(f)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _dataset(group, name, data, **kw):
    opts = dict(COMPRESSION)
    opts.update(kw)
    return group.create_dataset(name, data=data, track_times=False, **opts)


def write_activations(path, arch, seed, params, x_held, y_held, acc,
                      train_acc):
    widths, act = ARCHITECTURES[arch]
    _, hs, logits = forward(params, x_held, ARCHITECTURES[arch][1])
    layer_names = [f"layers/{i + 1}" for i in range(len(hs))]

    def fill(f):
        grp = f.create_group("layers", track_order=True)
        for i, h in enumerate(hs):
            # one chunk per layer: small arrays, better compression
            _dataset(grp, str(i + 1), h.astype(np.float32), chunks=h.shape)
        _dataset(f, "logits", logits.astype(np.float32), chunks=logits.shape)
        _dataset(f, "labels", y_held.astype(np.int64))
        f.attrs.create("layer_order", np.array(layer_names, dtype=object),
                       dtype=h5py.string_dtype())
        f.attrs["architecture"] = arch
        f.attrs["seed"] = np.int64(seed)
        f.attrs["heldout_accuracy"] = np.float64(acc)
        f.attrs["train_accuracy"] = np.float64(train_acc)
        f.attrs["widths"] = np.array(widths, dtype=np.int64)
        f.attrs["activation"] = act
        f.attrs["split_seed"] = np.int64(SPLIT_SEED)
        f.attrs["generator"] = GENERATOR

    atomic_h5(path, fill)
    return [(name, h.shape) for name, h in zip(layer_names, hs)]


def write_grads(path, params, g_held, y_held, g_train, y_train, acc,
                train_acc):
    shapes = [p.shape for p in params]
    sizes = [int(np.prod(s)) for s in shapes]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n, P = g_held.shape
    chunks = (n, min(512, P))

    def fill(f):
        _dataset(f, "grads", g_held.astype(np.float32), chunks=chunks)
        _dataset(f, "labels", y_held.astype(np.int64))
        _dataset(f, "train_grads", g_train.astype(np.float32),
                 chunks=(len(g_train), min(512, P)))
        _dataset(f, "train_labels", y_train.astype(np.int64))
        sdt = h5py.string_dtype()
        f.attrs["architecture"] = "64-32-10 relu"
        f.attrs["seed"] = np.int64(GRAD_SEED)
        f.attrs.create("param_order", np.array(PARAM_NAMES, dtype=object),
                       dtype=sdt)
        f.attrs.create("param_shapes",
                       np.array(["x".join(map(str, s)) for s in shapes],
                                dtype=object), dtype=sdt)
        f.attrs["param_offsets"] = offsets
        f.attrs["param_layout"] = (
            "columns = concat(W1.ravel(), b1, W2.ravel(), b2), C order; "
            "W1 is (64, 32), W2 is (32, 10); "
            "logits = relu(x @ W1 + b1) @ W2 + b2, x = pixels / 16")
        f.attrs["output"] = "true-class logit"
        f.attrs["heldout_accuracy"] = np.float64(acc)
        f.attrs["train_accuracy"] = np.float64(train_acc)
        f.attrs["split_seed"] = np.int64(SPLIT_SEED)
        f.attrs["generator"] = GENERATOR

    atomic_h5(path, fill)


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.dirname(
        os.path.abspath(__file__)),
        help="output folder (default: the folder this script lives in)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    t_start = time.perf_counter()

    x_tr, y_tr, x_he, y_he = load_split()
    print(f"digits: {len(x_tr)} train / {len(x_he)} held-out "
          f"(split seed {SPLIT_SEED})")

    for arch, seed in ACTIVATION_RUNS:
        t0 = time.perf_counter()
        params = train(arch, seed, x_tr, y_tr)
        act = ARCHITECTURES[arch][1]
        acc = accuracy(params, x_he, y_he, act)
        train_acc = accuracy(params, x_tr, y_tr, act)
        assert acc >= 0.90, f"{arch} seed {seed}: held-out accuracy {acc}"
        path = os.path.join(args.out, f"{arch}_seed{seed}.h5")
        layers = write_activations(path, arch, seed, params, x_he, y_he, acc,
                                   train_acc)
        shapes = ", ".join(f"{n} {s[0]}x{s[1]}" for n, s in layers)
        print(f"{os.path.basename(path)}: {arch} seed {seed}  held-out acc "
              f"{acc:.4f} (train {train_acc:.4f})  [{shapes}; logits "
              f"{len(x_he)}x10]  {time.perf_counter() - t0:.1f}s")

    t0 = time.perf_counter()
    params = train(GRAD_ARCH, GRAD_SEED, x_tr, y_tr)
    acc = accuracy(params, x_he, y_he, "relu")
    train_acc = accuracy(params, x_tr, y_tr, "relu")
    assert acc >= 0.90, f"gradient net: held-out accuracy {acc}"
    worst = check_against_finite_differences(
        params, np.concatenate([x_he[:2], x_tr[:1]]),
        np.concatenate([y_he[:2], y_tr[:1]]))
    g_he = per_example_logit_grads(params, x_he[:N_GRAD], y_he[:N_GRAD])
    g_tr = per_example_logit_grads(params, x_tr[:N_GRAD], y_tr[:N_GRAD])
    path = os.path.join(args.out, "grads.h5")
    write_grads(path, params, g_he, y_he[:N_GRAD], g_tr, y_tr[:N_GRAD], acc,
                train_acc)
    print(f"grads.h5: 64-32-10 relu seed {GRAD_SEED}  held-out acc {acc:.4f} "
          f"(train {train_acc:.4f})  [grads {g_he.shape[0]}x{g_he.shape[1]}, "
          f"train_grads {g_tr.shape[0]}x{g_tr.shape[1]}; finite-difference "
          f"rel. error {worst:.1e}]  {time.perf_counter() - t0:.1f}s")
    print(f"total {time.perf_counter() - t_start:.1f}s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
