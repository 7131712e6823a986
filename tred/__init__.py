"""TRED reproduction: fine-tuning regularizers for transfer learning, as an importable library.

`tred.regularizers.functional` holds the penalties as pure tensor functions; the rest of the
package (data, models, engine, results) is what `scripts/train.py` and the table tools run.
"""

__version__ = "0.1.0"
