from tred.engine.evaluate import evaluate
from tred.engine.loop import Finetuner
from tred.engine.metrics import MetricsLog

__all__ = ["evaluate", "Finetuner", "MetricsLog"]
