from tred.engine.evaluate import evaluate
from tred.engine.loop import finetune
from tred.engine.metrics import MetricsLog

__all__ = ["evaluate", "finetune", "MetricsLog"]
