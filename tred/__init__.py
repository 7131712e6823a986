"""TRED reproduction: fine-tuning regularizers for transfer learning, as an importable library.

`from tred import L2SP, AT, DELTA, BSS, TRED, frozen_copy`: the regularizers as loss terms for your
own training loop and model (tred/library.py, docs/library.md). `tred.regularizers.functional`
holds their formulas as pure tensor functions; the rest of the package (data, models, engine,
results) is what `scripts/train.py` and the table tools run.
"""

__version__ = "0.1.0"

LIBRARY = ("AT", "BSS", "DELTA", "L2SP", "TRED", "Penalty", "frozen_copy")
__all__ = [*LIBRARY, "__version__"]


def __getattr__(name: str):
    # Imported on first use: `import tred` (the table tools, the config schema) stays free of torch.
    if name in LIBRARY:
        from tred import library

        return getattr(library, name)
    raise AttributeError(f"module 'tred' has no attribute {name!r}")
