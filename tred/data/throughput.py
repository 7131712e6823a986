"""Images per second of a data object's training stream alone (decode + augment + collate)."""

from __future__ import annotations

import time


def loader_throughput(data, batch_size: int, n_batches: int, seed: int = 0, warmup: int = 2) -> dict:
    """Time `n_batches` training batches after `warmup` ones (worker start-up excluded)."""
    stream = data.train_stream(batch_size, seed)
    for _ in range(warmup):
        next(stream)
    start = time.perf_counter()
    n = sum(len(next(stream)[1]) for _ in range(n_batches))
    seconds = time.perf_counter() - start
    stream.close()
    return {"loader_images": n, "loader_seconds": seconds, "loader_images_per_s": n / max(seconds, 1e-9)}
