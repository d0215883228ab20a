"""Real TorchScript archives for the op-allowlist tests: clean models real users send (scripted and
traced), modules that call forbidden ops in every place code can hide, and hand-written code that
torch.jit.load accepts but the printer never writes (aliases, getattr, ``.autograd``)."""

from __future__ import annotations

import io
import warnings
import zipfile

import torch
from torch import nn

from tests.zips import entry_name, rezip

SECRET = "/etc/passwd"  # any readable file: what an attacker would read


def archive(module: torch.jit.ScriptModule) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    return buffer.getvalue()


# ---- clean models -------------------------------------------------------------------------------

class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.1), nn.Flatten(),
        )
        self.head = nn.Linear(4 * 13 * 13, 10)

    def forward(self, x):
        return torch.log_softmax(self.head(self.features(x)), 1)


class LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, batch_first=True)
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 2))


def dynamic_int8_lstm() -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(LSTMNet().eval(), {nn.Linear, nn.LSTM}, dtype=torch.qint8)


def clean_archives() -> dict[str, bytes]:
    torch.manual_seed(0)
    conv, lstm, dense, quantized = ConvNet().eval(), LSTMNet().eval(), mlp().eval(), dynamic_int8_lstm()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "conv-scripted": archive(torch.jit.script(conv)),
            "conv-traced": archive(torch.jit.trace(conv, torch.randn(1, 1, 28, 28))),
            "mlp-scripted": archive(torch.jit.script(dense)),
            "mlp-traced": archive(torch.jit.trace(dense, torch.randn(1, 8))),
            "lstm-scripted": archive(torch.jit.script(lstm)),
            "lstm-traced": archive(torch.jit.trace(lstm, torch.randn(1, 5, 8))),
            "int8-lstm-scripted": archive(torch.jit.script(quantized)),
            "int8-lstm-traced": archive(torch.jit.trace(quantized, torch.randn(1, 5, 8))),
        }


# ---- forbidden ops, scripted by torch itself ------------------------------------------------------

class FromFile(nn.Module):
    def forward(self, x):
        return x + torch.from_file("/etc/passwd", False, 4).sum()


class Save(nn.Module):
    def forward(self, x):
        torch.save(x, "/tmp/modelpress-pwned.pt")
        return x


class OpsAtenFromFile(nn.Module):
    def forward(self, x):
        return x + torch.ops.aten.from_file("/etc/passwd", False, 4).sum()


class Helper(nn.Module):
    def forward(self, x):
        return x * 2

    @torch.jit.export
    def leak(self, x):
        return x + torch.from_file("/etc/passwd", False, 4).sum()


class HiddenInSubmodule(nn.Module):
    """``from_file`` in a submodule's exported, never-called-by-forward method."""

    def __init__(self):
        super().__init__()
        self.inner = Helper()

    def forward(self, x):
        return self.inner(x)


class SaveInSetstate(nn.Module):
    """``torch.save`` in ``__setstate__``: runs while torch.jit.load unpickles, before any graph check."""

    def __init__(self):
        super().__init__()
        self.w = torch.zeros(3)

    def forward(self, x):
        return x + self.w

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, bool]:
        return (self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]) -> None:
        self.w = state[0]
        self.training = state[1]
        torch.save(self.w, "/tmp/modelpress-pwned.pt")


def read_secret(x: torch.Tensor) -> torch.Tensor:
    return x + torch.from_file("/etc/passwd", False, 4).sum()


class InFreeFunction(nn.Module):
    def forward(self, x):
        return read_secret(x)


class ScriptProfile(nn.Module):
    """A TorchScript custom class outside the allowlist (``torch.classes.profiling._ScriptProfile``)."""

    def forward(self, x):
        profile = torch.classes.profiling._ScriptProfile()
        profile.enable()
        return x


torch.library.define("evil::touch", "(Tensor a) -> Tensor")
torch.library.impl("evil::touch", "CPU")(lambda a: a.clone())


class CustomNamespace(nn.Module):
    def forward(self, x):
        return torch.ops.evil.touch(x)


# ---- hand-written code that torch.jit.load compiles (checked in the tests) ------------------------

FROM_FILE_ARGS = f'"{SECRET}", False, 4'
HAND_WRITTEN = {
    "alias-torch": ("`torch` as a plain value", f"t = torch\n    return t.from_file({FROM_FILE_ARGS})"),
    "alias-function": ("aten::from_file", f"f = torch.from_file\n    return f({FROM_FILE_ARGS})"),
    "getattr-torch": ("aten::from_file", f'return getattr(torch, "from_file")({FROM_FILE_ARGS})'),
    "torch-autograd": ("aten::from_file", f"return torch.autograd.from_file({FROM_FILE_ARGS})"),
    "ops-aten": ("aten::from_file", f"return ops.aten.from_file({FROM_FILE_ARGS})"),
    "ops-namespace-autograd": ("aten::from_file", f"return ops.evil.autograd.from_file({FROM_FILE_ARGS})"),
    "alias-ops-namespace": ("`ops.aten` as a plain value", f"o = ops.aten\n    return o.from_file({FROM_FILE_ARGS})"),
    "custom-class-path": ("__torch__.torch.classes.profiling._ScriptProfile",
                          "p = __torch__.torch.classes.profiling._ScriptProfile()\n    p.enable()\n    return x"),
}


class Plain(nn.Module):
    def forward(self, x):
        return x + 1


def with_forward_body(body: str) -> bytes:
    """The ``Plain`` archive with ``forward``'s body replaced (valid CRCs)."""
    base = archive(torch.jit.script(Plain()))
    code = entry_name(base, ".py")
    with zipfile.ZipFile(io.BytesIO(base)) as z:
        source = z.read(code).decode()
    assert "return torch.add(x, 1)" in source
    return rezip(base, replace={code: source.replace("return torch.add(x, 1)", body).encode()})


def with_code(code_text: bytes) -> bytes:
    """The ``Plain`` archive with its one code file replaced."""
    base = archive(torch.jit.script(Plain()))
    return rezip(base, replace={entry_name(base, ".py"): code_text})
