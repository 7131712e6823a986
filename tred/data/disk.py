"""Paper-scale datasets read from disk in their native layouts (filled in by the paper-scale work)."""

DATASETS: dict = {}


def build_disk(cfg, seed):  # pragma: no cover - replaced when the on-disk datasets land
    raise NotImplementedError(cfg.name)
