"""FusionShot's combiner training loop (fusionshot_src/train_ensemble.py at 6b44eaf, as spec
focal.md §6.1 describes it) in PyTorch, run for one epoch from fixed initial weights and a fixed
batch order, in both of fuselab's modes:

* "logits": cross-entropy on the last layer's outputs (fuselab's default);
* "fusionshot": FusionShot's own head, sigmoid then softmax, with CrossEntropyLoss applied to
  that softmax (the double softmax).

It writes parity.json beside itself: the inputs (features, labels, batch order, initial
weights) and, per mode, every batch loss, their mean (the epoch loss) and the mean loss over
the training rows after the epoch. `shared/tests/fusionshot_parity.rs` trains fuselab's network
from the same weights and order and compares the losses to 1e-5.

Rerun (CPU is enough; any recent PyTorch):
    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy
    /tmp/torchenv/bin/python shared/tests/fusionshot/parity.py
"""

import json
import pathlib

import numpy as np
import torch
from torch import nn

SAMPLES, MEMBERS, CLASSES, BATCH, LR = 200, 3, 4, 64, 1e-3


class Combiner(nn.Module):
    """FusionShot's MLP: Linear(D→100) → sigmoid → Linear(100→100) → sigmoid → Linear(100→C)."""

    def __init__(self, n_in, n_out, fusionshot_head):
        super().__init__()
        self.fc1 = nn.Linear(n_in, 100)
        self.fc2 = nn.Linear(100, 100)
        self.fc3 = nn.Linear(100, n_out)
        self.fusionshot_head = fusionshot_head
        for layer in (self.fc1, self.fc2, self.fc3):
            nn.init.xavier_uniform_(layer.weight)
            layer.bias.data.fill_(0.01)

    def forward(self, x):
        x = torch.sigmoid(self.fc1(x))
        x = torch.sigmoid(self.fc2(x))
        x = self.fc3(x)
        if self.fusionshot_head:
            x = torch.softmax(torch.sigmoid(x), dim=1)
        return x


def main():
    rng = np.random.default_rng(2024)
    labels = rng.integers(0, CLASSES, SAMPLES)
    # Members' logits: the true class raised for members that "know" the sample.
    logits = rng.normal(0.0, 1.0, (SAMPLES, MEMBERS, CLASSES))
    knows = rng.random((SAMPLES, MEMBERS)) < 0.6
    logits[np.arange(SAMPLES)[:, None], np.arange(MEMBERS)[None, :], labels[:, None]] += 2.5 * knows
    features = torch.tensor(logits.reshape(SAMPLES, MEMBERS * CLASSES), dtype=torch.float32)
    targets = torch.tensor(labels, dtype=torch.int64)
    torch.manual_seed(7)
    initial = Combiner(MEMBERS * CLASSES, CLASSES, False).state_dict()
    order = torch.randperm(SAMPLES, generator=torch.Generator().manual_seed(11))

    out = {
        "samples": SAMPLES,
        "width": MEMBERS * CLASSES,
        "classes": CLASSES,
        "batch": BATCH,
        "lr": LR,
        "torch": torch.__version__,
        "features": features.flatten().tolist(),
        "labels": targets.tolist(),
        "order": order.tolist(),
        "initial": {name: tensor.flatten().tolist() for name, tensor in initial.items()},
        "modes": {},
    }
    for mode, head in (("logits", False), ("fusionshot", True)):
        model = Combiner(MEMBERS * CLASSES, CLASSES, head)
        model.load_state_dict(initial)
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        criterion = nn.CrossEntropyLoss()
        batch_losses = []
        for start in range(0, SAMPLES, BATCH):
            rows = order[start:start + BATCH]
            optimizer.zero_grad()
            loss = criterion(model(features[rows]), targets[rows])
            loss.backward()
            optimizer.step()
            batch_losses.append(loss.item())
        with torch.no_grad():
            after = criterion(model(features), targets).item()
        out["modes"][mode] = {
            "batch_losses": batch_losses,
            "epoch_loss": float(np.mean(batch_losses)),
            "loss_after": after,
        }
    path = pathlib.Path(__file__).with_name("parity.json")
    path.write_text(json.dumps(out) + "\n")
    print(f"wrote {path}: " + ", ".join(
        f"{mode} epoch loss {m['epoch_loss']:.6f} after {m['loss_after']:.6f}"
        for mode, m in out["modes"].items()))


if __name__ == "__main__":
    main()
