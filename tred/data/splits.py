"""Seeded, stratified splits and class-balanced nested subsets (pure index arithmetic)."""

from __future__ import annotations

import numpy as np

from tred.errors import ConfigError


def _class_permutations(labels: np.ndarray, seed: int) -> dict[int, np.ndarray]:
    """For each class, its indices in a seeded random order (the order never depends on rates)."""
    rng = np.random.default_rng(seed)
    return {int(c): rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)}


def stratified_split(labels: np.ndarray, train_per_class: int | None, seed: int,
                     test_per_class: int | None = None, test_fraction: float = 0.3):
    """Split indices into (train, test), stratified by class and fixed by `seed`.

    `train_per_class` images of each class go to train (or 1 - test_fraction of them when it is
    None) and the remaining ones, at most `test_per_class`, to test.
    """
    train, test = [], []
    for c, idx in _class_permutations(labels, seed).items():
        n_train = train_per_class if train_per_class is not None else int(round(len(idx) * (1 - test_fraction)))
        if n_train >= len(idx):
            raise ConfigError(
                f"class {c} has {len(idx)} images, not enough for train_per_class={n_train} "
                "plus a test set; lower dataset.train_per_class")
        train.append(idx[:n_train])
        rest = idx[n_train:]
        test.append(rest if test_per_class is None else rest[:test_per_class])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def balanced_subset(labels: np.ndarray, rate: float, seed: int, budget: int | None = None) -> np.ndarray:
    """Positions (into `labels`) of a class-balanced subset keeping `rate` of every class, or,
    with `budget`, `budget` images of every class (all of a class that has fewer).

    Nested: for one seed, the subset at a smaller rate (budget) is inside the subset at a larger
    one, because every rate and budget takes a prefix of the same per-class permutation; so a
    budget of 5 of a class's 20 images is exactly its sample rate 0.25.
    """
    if not 0 < rate <= 1:
        raise ConfigError(f"dataset.sample_rate must be in (0, 1], got {rate}")
    if budget is not None and budget < 1:
        raise ConfigError(f"dataset.budget must be >= 1 image per class (or null), got {budget}")
    keep = []
    for c, idx in _class_permutations(labels, seed).items():
        n = min(budget, len(idx)) if budget is not None else int(round(rate * len(idx)))
        if n == 0:
            raise ConfigError(
                f"dataset.sample_rate={rate} leaves class {c} ({len(idx)} training images) "
                "with no image; use a larger sample rate or training budget")
        keep.append(idx[:n])
    return np.sort(np.concatenate(keep))


def validation_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into `labels`, a training split) of (train, validation): a stratified, seeded
    `fraction` of every class held out, so hyperparameters are chosen without the test split."""
    if not 0 < fraction < 1:
        raise ConfigError(f"dataset.val_fraction must be in (0, 1), got {fraction}")
    return stratified_split(labels, None, seed, test_fraction=fraction)


VAL_POOLS = ("subset", "unused")


def validation_split(n_train: int, keep: np.ndarray, labels: np.ndarray, pool: str, fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) positions into a training split of `n_train` images (`labels`) whose
    sample-rate subset is `keep`, for tuning without the test split.

    pool "subset": hold out a stratified `fraction` of the subset (fewer training images than
    the table trains on). pool "unused": train on the subset itself and validate on the training
    images it leaves out (`sample_rate` < 1), so a tuning run trains on exactly the data a table
    run of the same seed gets.
    """
    if pool == "subset":
        tr, va = validation_holdout(labels[keep], fraction, seed)
        return keep[tr], keep[va]
    if pool == "unused":
        rest = np.setdiff1d(np.arange(n_train), keep)
        if len(rest) == 0:
            raise ConfigError("dataset.val_pool=unused needs dataset.sample_rate < 1 or a dataset.budget below the "
                              "class sizes (the training images outside the subset are the validation set); use "
                              "dataset.val_pool=subset")
        return keep, rest
    raise ConfigError(f"dataset.val_pool={pool!r}; valid: {list(VAL_POOLS)}")


def training_subset(labels: np.ndarray, cfg, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(train, held-out) positions into a training split with `labels`, for the dataset config
    `cfg` (in memory or on disk alike): the seeded `sample_rate` subset, and with `validation`
    the validation images (`validation_split`); held-out None: evaluate on the test split."""
    keep = balanced_subset(labels, cfg.sample_rate, seed, cfg.get("budget"))
    if not cfg.validation:
        return keep, None
    return validation_split(len(labels), keep, labels, cfg.val_pool, cfg.val_fraction, seed)
