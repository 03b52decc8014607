"""FusionShot's combiner (fusionshot_src/train_ensemble.py, spec focal.md §6.1) in PyTorch on
fuselab's demo pool, for timing against `cargo bench --bench combine`: the eight digits
classifiers' probabilities concatenated, Linear(80→100) → sigmoid → Linear(100→100) → sigmoid
→ Linear(100→10), Xavier-uniform weights, biases 0.01, cross-entropy on the logits, Adam 1e-3,
batch 64, 300 epochs on the train split, the checkpoint with the best val accuracy kept (a copy
of the state dict after each improvement), reported on test.

    /tmp/torchenv/bin/python tests/bench/combine_torch.py <data-dir>/demo/digits-pool.json

(any recent torch and numpy; see shared/tests/fusionshot/parity.py for the set-up). It runs on
one thread, as the Rust benchmark does, and then on all threads.
"""

import copy
import json
import sys
import time

import numpy as np
import torch
from torch import nn

EPOCHS, BATCH, LR = 300, 64, 1e-3


def load(path):
    pool = json.load(open(path))
    labels = np.array(pool["labels"])
    splits = np.array(pool["splits"])
    features = np.concatenate([np.array(m["probabilities"]) for m in pool["models"]], axis=1)
    part = lambda name: (
        torch.tensor(features[splits == name], dtype=torch.float32),
        torch.tensor(labels[splits == name], dtype=torch.int64),
    )
    return part("train"), part("val"), part("test")


class Combiner(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(n_in, 100), nn.Linear(100, 100), nn.Linear(100, n_out)
        for layer in (self.fc1, self.fc2, self.fc3):
            nn.init.xavier_uniform_(layer.weight)
            layer.bias.data.fill_(0.01)

    def forward(self, x):
        return self.fc3(torch.sigmoid(self.fc2(torch.sigmoid(self.fc1(x)))))


def train(train_set, val_set, test_set):
    (x, y), (vx, vy), (tx, ty) = train_set, val_set, test_set
    torch.manual_seed(0)
    model = Combiner(x.shape[1], 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    criterion = nn.CrossEntropyLoss()
    best, best_state = -1.0, None
    started = time.perf_counter()
    for _ in range(EPOCHS):
        order = torch.randperm(len(y))
        for start in range(0, len(y), BATCH):
            rows = order[start:start + BATCH]
            optimizer.zero_grad()
            criterion(model(x[rows]), y[rows]).backward()
            optimizer.step()
        with torch.no_grad():
            accuracy = (model(vx).argmax(1) == vy).float().mean().item()
        if accuracy > best:
            best, best_state = accuracy, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    with torch.no_grad():
        test = (model(tx).argmax(1) == ty).float().mean().item()
    return time.perf_counter() - started, test


def main():
    sets = load(sys.argv[1])
    print(f"torch {torch.__version__}: train {len(sets[0][1])} / val {len(sets[1][1])} / test {len(sets[2][1])}")
    for threads in (1, torch.get_num_threads()):
        torch.set_num_threads(threads)
        seconds, accuracy = train(*sets)
        print(f"mlp, PyTorch, {threads} thread(s): {seconds:.3f} s, test accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
