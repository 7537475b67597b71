"""Two RANDOM (untrained, seeded) transformer encoders read the same 100 random token sequences.

Run: ``python docs/chance_example.py [OUTDIR]`` (OUTDIR: also write every layer of both networks,
tokens flattened, to OUTDIR/net1.h5 and OUTDIR/net2.h5 for the CLI examples in docs/chance.md).
"""
import sys

import numpy as np
import torch

from repsim_cli.metrics import parse_metric
from repsim_cli.metrics.chance import cka_permutation_moments
from repsim_cli.stats import permutation_null

N, L, D, VOCAB = 100, 32, 64, 1000


def random_transformer(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Embedding(VOCAB, D),
        torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(D, 4, 128, dropout=0.0, batch_first=True), 2),
    ).eval()


tokens = torch.randint(0, VOCAB, (N, L), generator=torch.Generator().manual_seed(0))
other = torch.randint(0, VOCAB, (N, L), generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    a = random_transformer(1)(tokens).double().numpy()  # N x L x D
    b = random_transformer(2)(tokens).double().numpy()
    b_other = random_transformer(2)(other).double().numpy()  # unrelated inputs: truly independent
if len(sys.argv) > 1:  # every layer of both networks, tokens flattened, for the CLI examples
    import h5py

    for seed, inputs, name in ((1, tokens, "net1"), (2, tokens, "net2"), (2, other, "net2_other_inputs")):
        net = random_transformer(seed)
        with torch.no_grad(), h5py.File(f"{sys.argv[1]}/{name}.h5", "w") as f:
            h = net[0](inputs)
            f.create_dataset("embed", data=h.reshape(N, -1).numpy())
            for k, block in enumerate(net[1].layers, start=1):
                h = block(h)
                f.create_dataset(f"block{k}", data=h.reshape(N, -1).numpy())
            f.attrs["layer_order"] = ["embed", "block1", "block2"]
cases = [
    ("flattened tokens, same inputs", a.reshape(N, -1), b.reshape(N, -1)),
    ("flattened tokens, unrelated inputs", a.reshape(N, -1), b_other.reshape(N, -1)),
    ("mean-pooled tokens, same inputs", a.mean(1), b.mean(1)),
    ("tokens as inputs, same inputs", a.reshape(N * L, D), b.reshape(N * L, D)),
]
print("| representation | N | F | raw CKA | E0 (exact chance) | std | skew | z | p_moments | adjusted | 999-perm p | perm mean |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for name, x, y in cases:
    c = cka_permutation_moments(x, y)
    perm = permutation_null(parse_metric("cka"), x, y, 999, seed=0) if x.shape[0] <= 100 else None
    pp = f"{perm.p_value:.3g} | {perm.null_mean:.4f}" if perm else "-- | --"
    print(f"| {name} | {x.shape[0]} | {x.shape[1]} | {c.value:.4f} | {c.mean:.4f} | {c.std:.4f} | {c.skew:.3f} | "
          f"{c.z:.2f} | {c.p_value:.2g} | {c.adjusted:.4f} | {pp} |")
