"""The fine-tuning regularizers as loss terms for your own PyTorch training loop (docs/library.md).

    source = frozen_copy(model)                 # w0: the pretrained network (with your new head), frozen
    reg = DELTA(model, source, layers, head="fc", attention=DELTA.fit_attention(source, loader, layers, head="fc"))
    for x, y in loader:
        loss = F.cross_entropy(model(x), y) + reg(x)   # reg(x) after model(x), on the same batch

`model` is any nn.Module. `layers` are dotted names from `model.named_modules()`: the modules whose
outputs are the B x C x H x W feature maps FM_j; `head` names its classifier, the new nn.Linear
for the target classes. A penalty reads `model`'s feature maps (forward hooks) and pooled
features (the input of `head`) from your forward, so call it after `model(x)`; a feature-map
penalty runs the source on `x` once per call, without autograd.

One implementation: the formulas are `tred.regularizers.functional`'s and stage 1 is
`tred.stage1`'s (`fit_channel_attention`, `projection_split`), the functions the Hydra pipeline's
regularizers (tred/regularizers/*.py) call.
"""

from __future__ import annotations

from itertools import islice

import torch
from torch import nn

from tred.models.hooks import FeatureTaps
from tred.models.network import frozen_copy
from tred.regularizers.functional import at_penalty, bss_penalty, delta_penalty, head_l2_penalty, l2sp_penalty
from tred.regularizers.l2sp import sp_parameters
from tred.stage1.channel_attention import fit_channel_attention
from tred.stage1.disentangle import projection_split
from tred.stage1.disentangler import Disentangler

__all__ = ["AT", "BSS", "DELTA", "L2SP", "TRED", "Penalty", "frozen_copy"]


def _linear(model: nn.Module, head: str) -> nn.Linear:
    module = model.get_submodule(head)
    if not isinstance(module, nn.Linear):
        raise TypeError(f"head={head!r} is a {type(module).__name__}; name the classifier, an nn.Linear")
    return module


class _Pooled(nn.Module):
    """`net` as stage 1 sees a source (like tred.models.backbones.Backbone): `.body` holds the
    named layers, and calling it returns the pooled feature that the classifier `head` reads."""

    def __init__(self, net: nn.Module, head: str):
        super().__init__()
        self.body, self.head = net, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen = []
        # a hook for this call only: inference_copy deep-copies this module
        hook = self.body.get_submodule(self.head).register_forward_pre_hook(lambda _m, inp: seen.append(inp[0]))
        try:
            self.body(x)
        finally:
            hook.remove()
        return seen[-1]


def _device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


class Penalty:
    """A loss term: `penalty(x)`, after `model(x)` on the same batch, is the sum of `terms(x)`,
    its parts by the names the pipeline's metrics.csv gives them."""

    def __init__(self):
        self._closers: list = []

    def terms(self, x: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor | None = None) -> torch.Tensor:
        return sum(self.terms(x).values())

    def close(self) -> None:
        """Remove the hooks this penalty put on the networks."""
        for close in self._closers:
            close()
        self._closers = []


class L2SP(Penalty):
    """L2-SP (Li, Grandvalet, Davoine, ICML 2018): the weights pulled toward the pretrained ones,

        alpha/2 * sum_{w not in head} ||w - w0||^2  +  beta/2 * ||w_head||^2     (`l2sp_sp`, `l2sp_head`)

    w0: the parameter of the same name in `source`; the head's bias is not penalized. Use it
    without weight decay in the optimizer. `exclude_norm_and_bias`: conv/linear weights only.
    """

    def __init__(self, model: nn.Module, source: nn.Module, head: str, alpha: float = 0.1, beta: float = 0.01,
                 exclude_norm_and_bias: bool = False):
        super().__init__()
        self.head, self.alpha, self.beta = _linear(model, head), alpha, beta
        names = [n for n in sp_parameters(model, exclude_norm_and_bias) if not n.startswith(head + ".")]
        own, ref = dict(model.named_parameters()), dict(source.named_parameters())
        bad = [n for n in names if n not in ref or ref[n].shape != own[n].shape]
        if bad:
            raise ValueError(f"L2SP: `source` has no parameter like {bad[:3]}; pass frozen_copy(model)")
        self.params = [own[n] for n in names]
        self.refs = [ref[n].detach() for n in names]

    def terms(self, x=None):
        return {"l2sp_sp": self.alpha * l2sp_penalty(self.params, self.refs),
                "l2sp_head": self.beta * head_l2_penalty(self.head)}


class BSS(Penalty):
    """Batch spectral shrinkage (Chen, Wang, Fu, Long, Wang, NeurIPS 2019):

        eta * sum_{i<=k} sigma_{-i}(F)^2     (`bss`)

    the k smallest singular values of the B x D pooled features F: the input of `head` in
    `model`'s latest forward.
    """

    def __init__(self, model: nn.Module, head: str, eta: float = 1e-3, k: int = 1):
        super().__init__()
        self.eta, self.k, self.features = eta, k, None
        self._closers.append(_linear(model, head).register_forward_pre_hook(self._keep).remove)

    def _keep(self, _module, inputs) -> None:
        self.features = inputs[0]

    def terms(self, x=None):
        features, self.features = self.features, None
        if features is None:
            raise RuntimeError("BSS: run model(x) on this batch before the penalty (it reads that forward's features)")
        return {"bss": self.eta * bss_penalty(features.float(), self.k)}


class _FeatureMaps(Penalty):
    """A penalty on the feature maps FM_j of `layers`: `model`'s from its latest forward (hooks),
    the frozen `source`'s computed on the same `x` without autograd."""

    def __init__(self, model: nn.Module, source: nn.Module, layers):
        super().__init__()
        self.layers, self.source = list(layers), source.eval()
        if not self.layers:
            raise ValueError(f"{type(self).__name__}: name at least one layer")
        taps = FeatureTaps(model, self.layers), FeatureTaps(source, self.layers)
        self._target, self._source = taps
        self._closers += [t.close for t in taps]

    def maps(self, x: torch.Tensor) -> tuple[dict, dict]:
        """(FM_j(w, x), FM_j(w0, x)) by layer name, in float32 (a no-op without autocast)."""
        target = self._target.pop()
        if len(target) < len(self.layers):
            raise RuntimeError(f"{type(self).__name__}: run model(x) on this batch before the penalty "
                               "(it reads that forward's feature maps)")
        with torch.no_grad():  # the source is a constant
            self.source(x)
        source = self._source.pop()
        return {j: target[j].float() for j in self.layers}, {j: source[j].float() for j in self.layers}


class AT(_FeatureMaps):
    """Attention transfer from the source (Zagoruyko & Komodakis, ICLR 2017):

        beta * sum_j mean_{b,hw} (a(FM_j(w, x)) - a(FM_j(w0, x)))^2,  a = L2-normalize_hw(mean_c FM^p)     (`at`)
    """

    def __init__(self, model: nn.Module, source: nn.Module, layers, beta: float = 1000.0, p: float = 2.0):
        super().__init__(model, source, layers)
        self.beta, self.p = beta, p

    def terms(self, x):
        target, source = self.maps(x)
        return {"at": self.beta * sum(at_penalty(target[j], source[j], self.p) for j in self.layers)}


class DELTA(_FeatureMaps):
    """DELTA (Li, Xiong, Wang, Huan, Dou, Chen, ICLR 2019): feature maps kept near the source's,

        alpha * sum_j 0.5 * sum_{b,c} C_j W_jc ||FM_jc(w, x) - R_jc||^2 / (H_j W_j)  +  beta/2 * ||w_head||^2

    (`delta_fm`, `delta_head`; summed over the batch, as the original code), R_j = FM_j(w0, x).
    W_j = `attention[j]`, DELTA's channel attention (`fit_attention`), or 1/C_j when None.
    """

    name = "delta"

    def __init__(self, model: nn.Module, source: nn.Module, layers, head: str,
                 attention: dict[str, torch.Tensor] | None = None, alpha: float = 0.01, beta: float = 0.01):
        self.head, self.alpha, self.beta = _linear(model, head), alpha, beta  # checked before any hook is set
        layers = list(layers)
        if attention is not None and set(layers) - set(attention):
            raise ValueError(f"attention has no weights for {sorted(set(layers) - set(attention))}")
        self.attention = dict(attention or {})
        super().__init__(model, source, layers)

    def reference(self, layer: str, fm_s: torch.Tensor) -> torch.Tensor:
        """R_j: the source's map itself (TRED: its target-relevant part)."""
        return fm_s

    def terms(self, x):
        target, source = self.maps(x)
        fm = sum(delta_penalty(target[j], self.reference(j, source[j]), self.attention.get(j)) for j in self.layers)
        return {f"{self.name}_fm": self.alpha * fm, f"{self.name}_head": self.beta * head_l2_penalty(self.head)}

    @staticmethod
    def fit_attention(source: nn.Module, loader, layers, head: str, *, epochs: int = 10, batches: int = 10,
                      temperature: float = 5.0, lr: float = 0.01, momentum: float = 0.9, batch_size: int = 32,
                      seed: int = 0) -> dict[str, torch.Tensor]:
        """DELTA's channel attention W_j (length C_j, sum 1) of each layer, from your `loader` of
        (images, labels) training batches (tred.stage1.channel_attention.fit_channel_attention).

        A new linear head is trained on the source's pooled features (the input of `head`) of
        every batch of `loader`: `epochs` epochs of SGD (`batch_size`, `lr`, `momentum`, seeded by
        `seed`). For channel c of layer j, s_c = mean over the first `batches` batches of
        CE(FM_j with channel c zeroed) - CE(unchanged); W_j = softmax(z-score(s_j) / temperature).
        Cost: one source forward per channel and scored batch (for timm's EfficientNet and ResNet,
        only the network after the layer is recomputed).
        """
        return fit_channel_attention(
            _Pooled(source, head), loader, islice(loader, batches), layers, _linear(source, head).out_features,
            epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, temperature=temperature, seed=seed,
            device=_device(source))


class TRED(DELTA):
    """TRED (Li et al., arXiv 2010.08532), this project's default recipe: DELTA toward the
    target-relevant part of the source's map instead of the whole map,

        alpha * sum_j 0.5 * sum_{b,c} C_j W_jc ||FM_jc(w, x) - (P_j FM_j(w0, x))_c||^2 / (H_j W_j)
        + beta/2 * ||w_head||^2

    (`tred_fm`, `tred_head`). P_j projects each position's channel vector onto the span of the
    target classes' mean pooled source features minus their mean: the closed-form stage 1,
    `split = TRED.fit_split(...)`. W_j as in DELTA (the default recipe: DELTA's layers and
    channel attention, `TRED.fit_attention`, 3 head epochs and 2 scored batches).
    """

    name = "tred"

    def __init__(self, model: nn.Module, source: nn.Module, layers, head: str, split: Disentangler,
                 attention: dict[str, torch.Tensor] | None = None, alpha: float = 0.01, beta: float = 0.01):
        layers = list(layers)
        if set(layers) - set(split.names()):
            raise ValueError(f"split was fitted for {split.names()}, not {sorted(set(layers) - set(split.names()))}")
        self.split = split
        super().__init__(model, source, layers, head, attention, alpha, beta)

    def reference(self, layer: str, fm_s: torch.Tensor) -> torch.Tensor:
        """R_j = P_j FM_j(w0, x), the relevant part, a constant."""
        with torch.no_grad():
            return self.split[layer].relevant_part(fm_s)

    @staticmethod
    def fit_split(source: nn.Module, loader, layers, head: str, *, probe_steps: int = 200, probe_lr: float = 0.01,
                  seed: int = 0, max_images: int | None = None) -> Disentangler:
        """Stage 1, the projection split (tred.stage1.disentangle.projection_split): the source's
        maps of `layers` over `loader` (the first `max_images` images; all of them are kept on the
        device at once), P_j from their class means, and a linear probe h_r on pool(P_j z) (a
        diagnostic: `split[layer].head`)."""
        split, _ = projection_split(_Pooled(source, head), layers, loader, _linear(source, head).out_features,
                                    probe_steps=probe_steps, probe_lr=probe_lr, seed=seed, device=_device(source),
                                    max_images=max_images)
        return split

    @staticmethod
    def fit_attention(source: nn.Module, loader, layers, head: str, *, epochs: int = 3, batches: int = 2,
                      **settings) -> dict[str, torch.Tensor]:
        """`DELTA.fit_attention` with TRED's defaults (3 head epochs, 2 scored batches)."""
        return DELTA.fit_attention(source, loader, layers, head, epochs=epochs, batches=batches, **settings)
