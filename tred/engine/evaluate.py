"""Evaluation of the last iterate on the test split: top-1 and mean per-class accuracy (%)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.inference_mode()
def evaluate(model, data, batch_size: int, device, split: str = "test") -> dict:
    was_training = model.training
    model.eval()
    correct = torch.zeros(data.num_classes)
    total = torch.zeros(data.num_classes)
    loss_sum, n = 0.0, 0
    for x, y in data.eval_batches(split, batch_size):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits, _ = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
        pred = logits.argmax(1)
        total += torch.bincount(y.cpu(), minlength=data.num_classes).float()
        correct += torch.bincount(y[pred == y].cpu(), minlength=data.num_classes).float()
        n += len(y)
    model.train(was_training)
    seen = total > 0
    return {
        f"{split}_acc": 100.0 * correct.sum().item() / max(n, 1),
        f"{split}_mean_class_acc": 100.0 * (correct[seen] / total[seen]).mean().item(),
        f"{split}_loss": loss_sum / max(n, 1),
        f"{split}_size": n,
    }
