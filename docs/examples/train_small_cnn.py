"""Train two seeds of a tiny CNN on synthetic images, for the `repsim capture` example.

Data (numpy only, no download): 16 x 16 grey images of four classes -- a horizontal bar, a
vertical bar, a diagonal, a square outline -- at random positions, with Gaussian noise.
Writes into OUT (default ``capture-demo/``):

* ``cnn_seed0.pt``, ``cnn_seed1.pt``: state dicts (load with ``make_cnn`` below);
* ``images.npy`` (N x 1 x 16 x 16 float32) and ``labels.npy``: 500 held-out images.

Then, e.g.::

    repsim capture docs/examples/train_small_cnn.py:make_cnn --weights capture-demo/cnn_seed0.pt \\
        --inputs capture-demo/images.npy --labels capture-demo/labels.npy -o capture-demo/cnn0.h5

Run: ``python docs/examples/train_small_cnn.py [OUT]`` (a few seconds on a CPU).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

SIZE = 16
CLASSES = 4


class SmallCNN(nn.Module):
    """conv(8) - relu - pool - conv(16) - relu - pool - fc(32) - relu - fc(4)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(32, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc2(self.relu3(self.fc1(self.flatten(x))))


def make_cnn() -> nn.Module:
    """The factory `repsim capture` calls (weights come from --weights)."""
    return SmallCNN()


def make_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n noisy images of the four shapes at random positions, and their classes."""
    y = rng.integers(0, CLASSES, n)
    x = np.zeros((n, 1, SIZE, SIZE), dtype=np.float32)
    for i, c in enumerate(y):
        r, s = rng.integers(3, SIZE - 3, 2)
        if c == 0:
            x[i, 0, r, 2:-2] = 1
        elif c == 1:
            x[i, 0, 2:-2, s] = 1
        elif c == 2:
            k = np.arange(2, SIZE - 2)
            x[i, 0, k, k] = 1
            if rng.random() < 0.5:
                x[i, 0] = x[i, 0, :, ::-1]
        else:
            a, b = max(r - 3, 0), min(r + 3, SIZE - 1)
            x[i, 0, a:b + 1, a] = x[i, 0, a:b + 1, b] = x[i, 0, a, a:b + 1] = x[i, 0, b, a:b + 1] = 1
    x += 0.3 * rng.standard_normal(x.shape).astype(np.float32)
    return x, y


def train(seed: int, x: np.ndarray, y: np.ndarray, epochs: int = 4) -> nn.Module:
    """Adam, lr 3e-3, batches of 64; weight init and batch order from ``seed``."""
    torch.manual_seed(seed)
    model = make_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()


def main(out: str = "capture-demo") -> None:
    torch.set_num_threads(1)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2024)
    x_train, y_train = make_images(3000, rng)
    x_test, y_test = make_images(500, rng)
    np.save(folder / "images.npy", x_test)
    np.save(folder / "labels.npy", y_test)
    for seed in (0, 1):
        t0 = time.perf_counter()
        model = train(seed, x_train, y_train)
        with torch.no_grad():
            acc = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
        torch.save(model.state_dict(), folder / f"cnn_seed{seed}.pt")
        print(f"seed {seed}: held-out accuracy {acc:.3f} ({time.perf_counter() - t0:.1f} s) -> {folder / f'cnn_seed{seed}.pt'}")
    print(f"inputs: {folder / 'images.npy'} {x_test.shape}, labels: {folder / 'labels.npy'}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
