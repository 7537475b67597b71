"""repsim_cli.capture: activations, token pooling, gradients and projection against independent routes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from capture_models import (
    HERE,
    ItemNet,
    hooked_forward,
    images,
    make_cnn,
    make_mlp,
    make_token,
    make_tuple,
    torch,
)
from capture_models import hf_bare_dir, hf_dir  # noqa: F401  (pytest fixtures)

from repsim_cli.capture import (
    capture,
    cosine_error_bound,
    cosine_error_sd,
    pool_tokens,
    project,
    projection_matrix,
)
from repsim_cli.errors import RepsimError, RepsimWarning


def read(path, name):
    with h5py.File(path, "r") as f:
        return f[name][()]


def attrs(path, name=None):
    with h5py.File(path, "r") as f:
        obj = f if name is None else f[name]
        return {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in obj.attrs.items()}


# ------------------------------------------------------------------ activations


@pytest.mark.parametrize("factory, x", [(make_mlp, np.random.default_rng(0).standard_normal((37, 6)).astype(np.float32)), (make_cnn, images())])
def test_activations_equal_manual_hooks(tmp_path, factory, x):
    model = factory()
    res = capture(model, x, str(tmp_path / "a.h5"), batch_size=8)
    leaves = [n for n, m in model.named_modules() if n and not list(m.children())]
    assert list(res.layers) == leaves  # default: every leaf module, in model order
    ref = hooked_forward(factory(), x, leaves)
    order = [s.decode() if isinstance(s, bytes) else s for s in attrs(res.path)["layer_order"]]
    assert order == leaves
    for name in leaves:
        got = read(res.path, name)
        assert got.dtype == np.float32 and got.shape == ref[name].shape
        np.testing.assert_allclose(got, ref[name], rtol=0, atol=1e-6)
    a = attrs(res.path)
    assert a["seed"] == 0 and a["generator"] == "repsim capture" and a["torch_version"] == str(torch.__version__)
    assert a["inputs"] == "in-memory array"


def test_inplace_relu_does_not_leak_into_the_previous_layer(tmp_path):
    x = images(9)
    res = capture(make_cnn(), x, str(tmp_path / "a.h5"), layers=["features.0"])
    conv = read(res.path, "features.0")
    assert (conv < 0).any()  # captured before the in-place ReLU that follows it


def test_batch_size_does_not_change_the_result(tmp_path):
    x = images(23)
    a = capture(make_cnn(), x, str(tmp_path / "a.h5"), batch_size=23)
    b = capture(make_cnn(), x, str(tmp_path / "b.h5"), batch_size=4)
    for name in a.layers:
        np.testing.assert_allclose(read(a.path, name), read(b.path, name), rtol=1e-6, atol=1e-6)


def test_layer_globs_selectors_and_model_output(tmp_path):
    x = np.random.default_rng(1).standard_normal((11, 5)).astype(np.float32)
    model = make_tuple()
    res = capture(model, x, str(tmp_path / "t.h5"), layers=["pair", "pair.1", "pair.1.sq", "pair.0", "lin", "output"])
    assert list(res.layers) == ["lin", "pair", "pair.1", "pair.1.sq", "pair.0", "output"]
    lin = x @ model.lin.weight.detach().numpy().T + model.lin.bias.detach().numpy()
    np.testing.assert_allclose(read(res.path, "pair"), 2 * lin, atol=1e-6)  # first tensor of the tuple
    np.testing.assert_allclose(read(res.path, "pair.0"), 2 * lin, atol=1e-6)
    np.testing.assert_allclose(read(res.path, "pair.1"), -lin, atol=1e-6)  # first tensor of the dict
    np.testing.assert_allclose(read(res.path, "pair.1.sq"), lin * lin, atol=1e-6)
    np.testing.assert_allclose(read(res.path, "output"), 2 * lin - lin + lin * lin, atol=1e-5)


def test_inputs_from_h5_pt_and_safetensors_match_npy(tmp_path):
    from safetensors.torch import save_file

    x = np.random.default_rng(2).standard_normal((13, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("deep/inputs", data=x, chunks=(4, 6))
        f.create_dataset("other", data=np.zeros(3))
    torch.save({"x": torch.from_numpy(x), "y": torch.zeros(3)}, tmp_path / "x.pt")
    save_file({"x": torch.from_numpy(x)}, str(tmp_path / "x.safetensors"))
    base = capture(make_mlp(), str(tmp_path / "x.npy"), str(tmp_path / "o0.h5"), batch_size=5)
    for i, spec in enumerate([f"{tmp_path}/x.h5:deep/inputs", f"{tmp_path}/x.pt:x", f"{tmp_path}/x.safetensors"]):
        res = capture(make_mlp(), spec, str(tmp_path / f"o{i + 1}.h5"), batch_size=5)
        for name in base.layers:
            np.testing.assert_array_equal(read(res.path, name), read(base.path, name))
    with pytest.raises(RepsimError, match="2 arrays"):
        capture(make_mlp(), str(tmp_path / "x.pt"), str(tmp_path / "bad.h5"))


def test_file_is_atomic_and_never_overwrites_an_input(tmp_path):
    x = np.random.default_rng(0).standard_normal((10, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(RepsimError, match="refusing to overwrite an input"):
        capture(make_mlp(), str(tmp_path / "x.npy"), str(tmp_path / "x.npy"))
    with pytest.raises(RepsimError, match="forward pass failed"):
        capture(make_mlp(), np.zeros((4, 7), np.float32), str(tmp_path / "o.h5"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]  # nothing left behind


# ------------------------------------------------------------------ tokens


def hand_pool(h, m, mode):
    out = []
    for hi, mi in zip(h, m):
        real = np.flatnonzero(mi)
        out.append({"mean": hi[real].mean(axis=0), "first": hi[real[0]], "last": hi[real[-1]]}[mode])
    return np.array(out)


@pytest.mark.parametrize("mode", ["mean", "first", "last"])
def test_pool_tokens_matches_hand_computation_right_and_left_padding(mode):
    rng = np.random.default_rng(5)
    h = rng.standard_normal((4, 6, 3))
    right = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0]])
    left = right[:, ::-1].copy()
    for m in (right, left):
        got = pool_tokens(torch.from_numpy(h), torch.from_numpy(m), mode).numpy()
        np.testing.assert_allclose(got, hand_pool(h, m, mode), rtol=1e-12, atol=1e-12)
    h_pad = h.copy()
    h_pad[right == 0] = 1e6  # padding never enters a statistic
    np.testing.assert_allclose(pool_tokens(torch.from_numpy(h_pad), torch.from_numpy(right), mode).numpy(), hand_pool(h, right, mode), atol=1e-9)


def test_token_model_with_left_padded_mask(tmp_path):
    rng = np.random.default_rng(6)
    ids = rng.integers(1, 20, (9, 7))
    mask = np.ones_like(ids)
    for i in range(9):  # left padding of i % 4 tokens (id 0)
        mask[i, : i % 4] = 0
        ids[i, : i % 4] = 0
    model = make_token()
    with torch.no_grad():
        h = model(torch.from_numpy(ids)).numpy().astype(np.float64)
    for mode in ("mean", "last", "first"):
        res = capture(model, ids, str(tmp_path / f"{mode}.h5"), attention_mask=mask, tokens=mode, batch_size=4, layers=["output"])
        np.testing.assert_allclose(read(res.path, "output"), hand_pool(h, mask, mode), atol=1e-6)
        assert attrs(res.path, "output")["tokens"] == mode
    res = capture(model, ids, str(tmp_path / "all.h5"), attention_mask=mask, tokens="all", layers=["output"])
    got = read(res.path, "output")
    assert got.shape == (9, 7, 5) and attrs(res.path, "output")["axes"] == "N,T,D"
    np.testing.assert_array_equal(read(res.path, "attention_mask"), mask)
    assert np.all(got[mask == 0] == 0)
    np.testing.assert_allclose(got[mask == 1], h[mask == 1], atol=1e-6)


def test_hf_hidden_states_and_last_token(tmp_path, hf_dir):  # noqa: F811
    from transformers import AutoModel, AutoTokenizer

    (tmp_path / "s.txt").write_text("the cat sat on the mat\nhello world\na dog ran\nfast\n")
    res = capture(f"hf:{hf_dir}", text=str(tmp_path / "s.txt"), out=str(tmp_path / "h.h5"), tokens="last", batch_size=3)
    assert list(res.layers) == ["hidden_states/00", "hidden_states/01", "hidden_states/02"]
    tok = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModel.from_pretrained(hf_dir).eval()
    lines = ["the cat sat on the mat", "hello world", "a dog ran", "fast"]
    with torch.no_grad():
        for i, line in enumerate(lines):  # one sentence at a time: no padding at all
            hs = model(**tok([line], return_tensors="pt"), output_hidden_states=True).hidden_states
            for k in range(3):
                np.testing.assert_allclose(read(res.path, f"hidden_states/{k:02d}")[i], hs[k][0, -1].numpy(), atol=1e-5)
    a = attrs(res.path)
    assert a["model_kind"] == "hf" and a["tokens"] == "last" and "transformers_version" in a and a["inputs_sha256"]


# ------------------------------------------------------------------ gradients


def loop_grads(model, x, y, output, names=None):
    """Independent route: one torch.autograd.grad call per example."""
    params = [(n, p) for n, p in model.named_parameters() if names is None or n in names]
    rows = []
    for i in range(len(x)):
        logits = model(torch.from_numpy(x[i : i + 1]))[0]
        if output == "loss":
            s = torch.nn.functional.cross_entropy(logits[None], torch.tensor([int(y[i])]))
        elif output == "true_logit":
            s = logits[int(y[i])]
        else:
            s = logits[int(output)]
        gs = torch.autograd.grad(s, [p for _, p in params])
        rows.append(torch.cat([g.reshape(-1) for g in gs]).numpy())
    return np.array(rows)


@pytest.mark.parametrize("output", ["loss", "true_logit", "2"])
def test_gradients_equal_per_example_loop(tmp_path, output):
    x = images(19)
    y = np.random.default_rng(0).integers(0, 3, 19)
    res = capture(make_cnn(), x, str(tmp_path / "g.h5"), layers=["fc"], grads=output, targets=y, batch_size=8)
    got = read(res.path, f"grads/{output}")
    ref = loop_grads(make_cnn().eval(), x, y, output)
    assert res.grad_mode == "vmap" and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    a = attrs(res.path, f"grads/{output}")
    names = [n for n, _ in make_cnn().named_parameters()]
    assert [s.decode() if isinstance(s, bytes) else s for s in a["param_names"]] == names
    assert a["param_offsets"][-1] == got.shape[1] == sum(p.numel() for p in make_cnn().parameters())


def test_gradients_restricted_by_grad_params(tmp_path):
    x = np.random.default_rng(3).standard_normal((15, 6)).astype(np.float32)
    y = np.random.default_rng(4).integers(0, 4, 15)
    res = capture(make_mlp(), x, str(tmp_path / "g.h5"), layers=["head"], grads="loss", targets=y, grad_params=["head.*", "fc2.bias"])
    got = read(res.path, "grads/loss")
    names = ["fc2.bias", "head.weight", "head.bias"]  # named_parameters() order, not glob order
    ref = loop_grads(make_mlp().eval(), x, y, "loss", names)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    a = attrs(res.path, "grads/loss")
    assert [s.decode() if isinstance(s, bytes) else s for s in a["param_names"]] == names
    assert a["param_offsets"] == [0, 10, 50, 54] and a["P"] == 54


def test_vmap_failure_falls_back_to_loop_with_warning(tmp_path):
    torch.manual_seed(0)
    model = ItemNet()
    x = np.random.default_rng(3).standard_normal((6, 6)).astype(np.float32)
    y = np.arange(6) % 4
    with pytest.warns(RepsimWarning, match="per-example loop"):
        res = capture(model, x, str(tmp_path / "g.h5"), layers=["fc"], grads="true_logit", targets=y, batch_size=4)
    assert res.grad_mode == "loop"
    np.testing.assert_allclose(read(res.path, "grads/true_logit"), loop_grads(model, x, y, "true_logit"), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ projection


def test_projection_is_reproducible_and_equals_the_explicit_matrix(tmp_path):
    x = images(21)
    y = np.random.default_rng(0).integers(0, 3, 21)
    kw = dict(layers=["fc"], grads="loss", targets=y, grad_project=32)
    a = capture(make_cnn(), x, str(tmp_path / "a.h5"), batch_size=21, seed=7, **kw)
    b = capture(make_cnn(), x, str(tmp_path / "b.h5"), batch_size=5, seed=7, **kw)
    c = capture(make_cnn(), x, str(tmp_path / "c.h5"), batch_size=5, seed=8, **kw)
    full = capture(make_cnn(), x, str(tmp_path / "f.h5"), layers=["fc"], grads="loss", targets=y)
    ga, gb, gc, g = (read(r.path, "grads/loss") for r in (a, b, c, full))
    np.testing.assert_allclose(ga, gb, rtol=1e-5, atol=1e-7)  # batch size does not matter
    assert not np.allclose(ga, gc)  # the seed does
    r = projection_matrix(g.shape[1], 32, 7)
    np.testing.assert_allclose(np.abs(r) * np.sqrt(32), 1.0, rtol=1e-6)  # Rademacher +-1/sqrt(K)
    assert 0.45 < (r > 0).mean() < 0.55
    np.testing.assert_allclose(ga, g.astype(np.float64) @ r, rtol=1e-4, atol=1e-6)
    at = attrs(a.path, "grads/loss")
    assert at["projection_seed"] == 7 and at["projection_dim"] == 32 and ga.shape == (21, 32)


def test_projection_preserves_cosines_within_documented_bound():
    rng = np.random.default_rng(11)
    n, p = 40, 9000  # P spans three generator blocks
    shared = rng.standard_normal(p)
    g = rng.standard_normal((n, p)) + rng.uniform(0, 2, (n, 1)) * shared  # cosines spread over (0, 0.8)

    def cos(a):
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        return (a @ a.T)[np.triu_indices(n, 1)]

    c = cos(g)
    bound = cosine_error_bound(n, 1024, delta=0.01)  # the worst-case (JL) bound is finite from K ~ 24 ln(2 N^2 / delta)
    assert 0.5 < bound < 1.0
    assert np.abs(cos(project(g, 1024, seed=0)) - c).max() <= bound
    # the documented typical error (1 - c^2)/sqrt(K), pooled over seeds (pairs share R, so errors correlate)
    k = 256
    err = np.array([cos(project(g, k, seed=s)) - c for s in range(6)])
    predicted_rms = np.sqrt(np.mean([cosine_error_sd(k, ci) ** 2 for ci in c]))
    assert 0.8 < np.sqrt(np.mean(err**2)) / predicted_rms < 1.2
    assert abs(err.mean()) < 0.02  # unbiased up to O(1/K) and seed noise
    assert cosine_error_bound(n, 64) == float("inf")  # K too small for the bound to say anything


# ------------------------------------------------------------------ errors


def test_errors_are_one_line_repsim_errors(tmp_path, hf_bare_dir):  # noqa: F811
    x = np.zeros((4, 6), np.float32)
    out = str(tmp_path / "o.h5")
    with pytest.raises(RepsimError, match=r"--layers 'conv\*' matches no module; available names: fc1, act, fc2, relu, head, output"):
        capture(make_mlp(), x, out, layers=["conv*"])
    with pytest.raises(RepsimError, match="returned a int, not a torch.nn.Module"):
        capture(f"{HERE / 'capture_models.py'}:not_a_module", x, out)
    with pytest.raises(RepsimError, match="--grad-params 'nope' matches no parameter"):
        capture(make_mlp(), x, out, grads="loss", targets=np.zeros(4, int), grad_params=["nope"])
    with pytest.raises(RepsimError, match="needs --targets"):
        capture(make_mlp(), x, out, grads="loss")
    with pytest.raises(RepsimError, match="expected N with N=4"):
        capture(make_mlp(), x, out, grads="loss", targets=np.zeros(3, int))
    (tmp_path / "s.txt").write_text("hello world\n")
    with pytest.raises(RepsimError, match="no tokenizer found"):
        capture(f"hf:{hf_bare_dir}", text=str(tmp_path / "s.txt"), out=out)
    with pytest.raises(RepsimError, match="N x T integer token ids"):
        capture(f"hf:{hf_bare_dir}", x, out)
    with pytest.raises(RepsimError, match="no such file"):
        capture(make_mlp(), str(tmp_path / "missing.npy"), out)
    assert not (tmp_path / "o.h5").exists()


def test_torchscript_and_exported_programs(tmp_path):
    x = np.random.default_rng(0).standard_normal((10, 6)).astype(np.float32)
    model = make_mlp().eval()
    torch.jit.script(model).save(str(tmp_path / "m.ts"))
    res = capture(str(tmp_path / "m.ts"), x, str(tmp_path / "ts.h5"), batch_size=4)
    assert list(res.layers) == ["output"]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(read(res.path, "output"), ref, atol=1e-6)
    with pytest.raises(RepsimError, match="runs no forward hooks"):
        capture(str(tmp_path / "m.ts"), x, str(tmp_path / "ts2.h5"), layers=["fc1"])
    ep = torch.export.export(model, (torch.from_numpy(x[:4]),))  # static batch of 4; N = 10 is not a multiple
    torch.export.save(ep, str(tmp_path / "m.pt2"))
    res = capture(str(tmp_path / "m.pt2"), x, str(tmp_path / "ep.h5"), batch_size=4, layers=["fc1", "head"])
    hooks = hooked_forward(make_mlp(), x, ["fc1", "head"])
    for name in ("fc1", "head"):
        np.testing.assert_allclose(read(res.path, name), hooks[name], atol=1e-6)
