"""tred.library: docs/library.md's python blocks run as written; each penalty, the projection
split and the channel attention against values worked out independently (by hand, loops, numpy)."""

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from tests.nets import randomize_bn
from tred import AT, BSS, DELTA, L2SP, TRED, frozen_copy
from tred.errors import ConfigError
from tred.models.suffix import has_suffix

DOC = Path(__file__).resolve().parents[1] / "docs" / "library.md"
SETUP_MARK = "# setup: your model and your data"
LAYERS = ["layer1", "layer2", "layer3", "layer4"]

pytestmark = pytest.mark.usefixtures("one_thread")


class TinyNet(nn.Module):
    """ResNet's module names (layer1..layer4, fc) around four small conv-BN-ReLU stages."""

    def __init__(self, num_classes: int = 4):
        super().__init__()

        def stage(cin, cout, stride):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.layer1, self.layer2 = stage(3, 8, 1), stage(8, 8, 2)
        self.layer3, self.layer4 = stage(8, 16, 2), stage(16, 16, 1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        for name in LAYERS:
            x = getattr(self, name)(x)
        return self.fc(x.mean((2, 3)))


# Replaces the doc's setup block: the same names, a tiny network and 64 random 16 px images.
TINY_SETUP = """
import torch
from torch.utils.data import DataLoader, TensorDataset

device = "cuda" if torch.cuda.is_available() else "cpu"
num_classes = 4


def make_model():
    torch.manual_seed(0)
    return TinyNet(num_classes).to(device)


g = torch.Generator().manual_seed(0)
dataset = TensorDataset(torch.rand(64, 3, 16, 16, generator=g), torch.arange(64) % num_classes)
loader = DataLoader(dataset, batch_size=16, shuffle=True, drop_last=True)
model = make_model()
"""


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def defined_names(code: str) -> set[str]:
    names = set()
    for node in ast.parse(code).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def test_doc_blocks_run_as_written():
    blocks = python_blocks()
    setup = [b for b in blocks if b.startswith(SETUP_MARK)]
    assert len(setup) == 1 and len(blocks) >= 9
    ns = {"TinyNet": TinyNet, "__name__": "docs_library"}
    exec(TINY_SETUP, ns)  # first: the "In short" block, above it in the page, uses model and loader
    for i, block in enumerate(blocks):
        if block is not setup[0]:
            exec(compile(block, f"{DOC}:python block {i + 1}", "exec"), ns)
    expected = {"reg": TRED, "l2sp": L2SP, "at": AT, "delta": DELTA, "bss": BSS, "tred": TRED}
    assert {k: type(ns[k]) for k in expected} == expected
    assert set(ns["attention"]) == set(LAYERS) == set(ns["split"].names())
    assert all(torch.isfinite(p).all() for p in ns["model"].parameters())


def test_the_tiny_setup_defines_what_the_doc_setup_does():
    (setup,) = [b for b in python_blocks() if b.startswith(SETUP_MARK)]
    used = {"device", "num_classes", "make_model", "loader", "model"}
    assert used <= defined_names(setup) and used <= defined_names(TINY_SETUP)


def test_the_doc_layer_names_exist():
    resnet = torchvision.models.resnet18(weights=None)
    assert all(n in dict(resnet.named_modules()) for n in [*LAYERS, "fc"])
    lite0 = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=3)
    assert all(n in dict(lite0.named_modules())
               for n in ["blocks.1", "blocks.2", "blocks.4", "blocks.6", "bn2", "classifier"])
    # channel attention recomputes only the suffix for timm's networks; torchvision's ResNet (same
    # class name, other modules) takes whole forwards
    assert has_suffix(lite0, "blocks.4") and not has_suffix(resnet, "layer4")


# --- against independent computations ----------------------------------------------------------


def tiny_pair(seed=0):
    """(model, source): TinyNet and its frozen copy, then the model's weights moved, both in eval mode."""
    torch.manual_seed(seed)
    model = TinyNet()
    randomize_bn(model)
    source = frozen_copy(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval(), source


def stage_maps(net, x):
    """FM_j of each stage and the pooled feature, by calling the stages one after the other (float64)."""
    maps, h = {}, x
    with torch.no_grad():
        for name in LAYERS:
            h = getattr(net, name)(h)
            maps[name] = h.double()
    return maps, h.mean((2, 3)).double()


def delta_by_loops(t, r, w):
    """0.5 * sum_{b,c} C w_c ||t[b,c] - r[b,c]||^2 / (H W), a loop over channels."""
    _, c, h, wd = t.shape
    return 0.5 * sum(c * float(w[k]) * float(((t[:, k] - r[:, k]) ** 2).sum()) / (h * wd) for k in range(c))


def test_l2sp_is_the_distance_to_the_source_weights_by_hand():
    model, source = tiny_pair()
    own, ref = dict(model.named_parameters()), dict(source.named_parameters())
    with torch.no_grad():
        sp = sum(float(((own[n].double() - ref[n].double()) ** 2).sum()) for n in own if not n.startswith("fc."))
        head = float((model.fc.weight.double() ** 2).sum())  # the weight, not the bias
    terms = L2SP(model, source, head="fc", alpha=0.3, beta=0.02).terms()
    assert terms["l2sp_sp"].item() == pytest.approx(0.3 / 2 * sp, rel=1e-5) and sp > 0
    assert terms["l2sp_head"].item() == pytest.approx(0.02 / 2 * head, rel=1e-5)


def test_delta_with_given_channel_weights_by_hand():
    model, source = tiny_pair(1)
    x = torch.rand(3, 3, 16, 16)
    g = torch.Generator().manual_seed(1)
    weights = {j: torch.softmax(torch.randn(c, generator=g), 0) for j, c in zip(LAYERS, (8, 8, 16, 16))}
    delta = DELTA(model, source, LAYERS, head="fc", attention=weights, alpha=0.05, beta=0.02)
    model(x)
    terms = delta.terms(x)
    t, _ = stage_maps(model, x)
    s, _ = stage_maps(source, x)
    fm = sum(delta_by_loops(t[j], s[j], weights[j]) for j in LAYERS)
    assert terms["delta_fm"].item() == pytest.approx(0.05 * fm, rel=1e-5)
    head = (model.fc.weight.detach().double() ** 2).sum().item()
    assert terms["delta_head"].item() == pytest.approx(0.02 / 2 * head, rel=1e-5)
    uniform = DELTA(model, source, LAYERS, head="fc", alpha=1.0)  # W_jc = 1/C_j
    model(x)
    plain = sum(0.5 * float(((t[j] - s[j]) ** 2).sum()) / (t[j].shape[2] * t[j].shape[3]) for j in LAYERS)
    assert uniform.terms(x)["delta_fm"].item() == pytest.approx(plain, rel=1e-5)


def test_at_by_hand():
    model, source = tiny_pair(2)
    x = torch.rand(2, 3, 16, 16)
    at = AT(model, source, ["layer2", "layer4"], beta=7.0, p=2)
    model(x)
    t, _ = stage_maps(model, x)
    s, _ = stage_maps(source, x)

    def a(fm):  # per sample: the map of mean_c fm^2 over positions, divided by its L2 norm
        m = (fm ** 2).mean(1).flatten(1)
        return m / torch.sqrt((m ** 2).sum(1, keepdim=True))

    expected = 7.0 * sum(float(((a(t[j]) - a(s[j])) ** 2).mean()) for j in ["layer2", "layer4"])
    assert at(x).item() == pytest.approx(expected, rel=1e-5)


def test_bss_is_the_smallest_singular_values_of_the_head_input():
    model, _ = tiny_pair(3)
    x = torch.rand(6, 3, 16, 16)
    bss = BSS(model, head="fc", eta=0.5, k=2)
    model(x)
    _, pooled = stage_maps(model, x)
    sv = np.sort(np.linalg.svd(pooled.numpy(), compute_uv=False))
    assert bss(x).item() == pytest.approx(0.5 * float((sv[:2] ** 2).sum()), rel=1e-4)
    with pytest.raises(RuntimeError, match="run model"):
        bss(x)  # the features of that forward are used once


def test_tred_split_is_the_projection_on_the_class_means_and_the_penalty_uses_it():
    model, source = tiny_pair(4)
    g = torch.Generator().manual_seed(4)
    batches = [(torch.rand(12, 3, 16, 16, generator=g), torch.arange(12) % 4) for _ in range(2)]
    split = TRED.fit_split(source, batches, ["layer3", "layer4"], head="fc", probe_steps=5)
    x = torch.rand(3, 3, 16, 16)
    s, _ = stage_maps(source, x)
    expected_fm = 0.0
    model(x)
    t, _ = stage_maps(model, x)
    for j in ["layer3", "layer4"]:
        # P = pinv(M) M, the orthogonal projector onto the row space of the centred class means M
        pooled = np.concatenate([stage_maps(source, xb)[0][j].mean((2, 3)).numpy() for xb, _ in batches])
        labels = np.concatenate([yb.numpy() for _, yb in batches])
        means = np.stack([pooled[labels == k].mean(0) for k in range(4)])
        centred = means - means.mean(0)
        proj = np.linalg.pinv(centred, rcond=1e-6) @ centred  # rank 3: the 4 centred means sum to 0
        ref = np.einsum("dc,bchw->bdhw", proj, s[j].numpy())
        np.testing.assert_allclose(split[j].relevant_part(s[j].float()).numpy(), ref, rtol=1e-4, atol=1e-5)
        expected_fm += delta_by_loops(t[j], torch.from_numpy(ref), torch.full((t[j].shape[1],), 1 / t[j].shape[1]))
    tred = TRED(model, source, ["layer3", "layer4"], head="fc", split=split, alpha=0.1)
    model(x)
    assert tred.terms(x)["tred_fm"].item() == pytest.approx(0.1 * expected_fm, rel=1e-4)


def attention_by_hand(forward, layer_module, channels, head, x, y, temperature=5.0):
    """softmax(z-score(CE(channel c of the layer zeroed) - CE) / T), one forward per channel."""
    with torch.no_grad():
        base = F.cross_entropy(head(forward(x)), y)
        scores = []
        for c in range(channels):
            def zero(_m, _i, out, c=c):
                out = out.clone()
                out[:, c] = 0
                return out
            handle = layer_module.register_forward_hook(zero)
            scores.append(F.cross_entropy(head(forward(x)), y) - base)
            handle.remove()
    s = torch.stack(scores)
    return torch.softmax((s - s.mean()) / s.std() / temperature, 0)


def test_attention_of_any_network_by_hand():
    """TinyNet (no known suffix: whole forwards); 0 head epochs, so the head is its seeded init."""
    _, source = tiny_pair(5)
    with torch.no_grad():  # features 20x as large: CE changes well above float32 rounding (~1e-7)
        source.layer4[1].weight.mul_(20)
        source.layer4[1].bias.mul_(20)
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    att = DELTA.fit_attention(source, [(x, y)], ["layer2", "layer4"], head="fc", epochs=0, batch_size=4, seed=3)
    torch.manual_seed(3)
    head = nn.Linear(16, 4)

    def pooled(inp):
        h = inp
        for name in LAYERS:
            h = getattr(source, name)(h)
        return h.mean((2, 3))

    for j, c in (("layer2", 8), ("layer4", 16)):
        torch.testing.assert_close(att[j], attention_by_hand(pooled, getattr(source, j), c, head, x, y),
                                   rtol=1e-4, atol=1e-6)


def test_attention_of_a_timm_model_with_its_classifier_by_hand():
    """timm Lite0 (the suffix path, on a BatchNorm-folded copy): the pooled feature is the
    classifier's input, not its logits."""
    torch.manual_seed(0)
    net = randomize_bn(timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=3))
    source = frozen_copy(net)
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    att = DELTA.fit_attention(source, [(x, y)], ["blocks.4"], head="classifier", epochs=0, batch_size=4)
    torch.manual_seed(0)
    head = nn.Linear(1280, 3)

    def pooled(inp):
        return source.forward_head(source.forward_features(inp), pre_logits=True)

    expected = attention_by_hand(pooled, source.get_submodule("blocks.4"), 112, head, x, y)
    torch.testing.assert_close(att["blocks.4"], expected, rtol=1e-4, atol=1e-5)


def test_mistakes_fail_clearly():
    model, source = tiny_pair()
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(ConfigError, match=r"unknown layer name\(s\) \['layer9'\].*layer4"):
        AT(model, source, ["layer9"])
    with pytest.raises(TypeError, match="nn.Linear"):
        DELTA(model, source, LAYERS, head="layer4")
    with pytest.raises(ValueError, match=r"no weights for \['layer4'\]"):
        DELTA(model, source, LAYERS, head="fc", attention={j: torch.ones(8) / 8 for j in LAYERS[:3]})
    with pytest.raises(ValueError, match="2 training images, fewer than one head batch"):
        DELTA.fit_attention(source, [(x, torch.tensor([0, 1]))], LAYERS, head="fc")  # batch_size 32: no SGD step
    delta = DELTA(model, source, LAYERS, head="fc")
    with pytest.raises(RuntimeError, match=r"run model\(x\)"):
        delta(x)
    delta.close()
    model(x)
    with pytest.raises(RuntimeError, match=r"run model\(x\)"):
        delta(x)  # closed: its hooks no longer record


def test_the_readme_block_is_the_tested_one():
    """The README's short version is docs/library.md's "In short" block, which
    test_doc_blocks_run_as_written executes: the README cannot rot either."""
    readme = re.findall(r"^```python\n(.*?)^```", (DOC.parents[1] / "README.md").read_text(), flags=re.S | re.M)
    short = DOC.read_text().split("## In short", 1)[1]
    assert readme == [python_blocks_of(short)[0]]


def python_blocks_of(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
