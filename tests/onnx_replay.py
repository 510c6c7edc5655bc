"""A small NumPy interpreter for the ONNX operators of the embedded CLIP graph.

It is the reference the converted model is proved against: it follows the ONNX
specification operator by operator, and its integer arithmetic is exact on any
CPU (``MatMulInteger`` accumulates in float64, exact for these sizes: every sum
is below 2^53), so the proof no longer depends on onnxruntime's int8 kernels,
which saturate on x86 CPUs without VNNI.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

# TensorProto data types the graph casts to
_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64, 9: np.bool_, 11: np.float64}


def _attrs(node) -> dict:
    import onnx
    from onnx import numpy_helper

    out = {}
    for a in node.attribute:
        out[a.name] = numpy_helper.to_array(a.t) if a.type == onnx.AttributeProto.TENSOR else \
            onnx.helper.get_attribute_value(a)
    return out


def _round_half_even(x: np.ndarray) -> np.ndarray:
    return np.round(x)  # NumPy rounds half to even, as the ONNX spec asks


def dynamic_quantize_linear(x: np.ndarray):
    """uint8 quantisation of a float tensor with one scale and zero point (ONNX DynamicQuantizeLinear)."""
    x = x.astype(np.float32)
    lo, hi = min(0.0, float(x.min())), max(0.0, float(x.max()))
    scale = np.float32((hi - lo) / 255.0)
    zero_point = np.uint8(np.clip(_round_half_even(np.float32(0.0 - lo) / scale), 0, 255)) if scale else np.uint8(0)
    y = np.clip(_round_half_even(x / scale) + zero_point, 0, 255).astype(np.uint8) if scale else \
        np.zeros_like(x, dtype=np.uint8)
    return y, scale, zero_point


def matmul_integer(a, b, a_zero=None, b_zero=None) -> np.ndarray:
    """``(A − a_zp) @ (B − b_zp)`` in exact integer arithmetic (float64 matmul of small integers)."""
    a = a.astype(np.float64) - (np.float64(a_zero) if a_zero is not None else 0.0)
    b = b.astype(np.float64) - (b_zero.astype(np.float64) if b_zero is not None else 0.0)
    return np.matmul(a, b).astype(np.int32)


def _conv(x, w, bias=None, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1, kernel_shape=None):
    """The patch embedding: a convolution whose stride equals its kernel, no padding."""
    kh, kw = w.shape[2:]
    if tuple(strides) != (kh, kw) or any(pads) or tuple(dilations) != (1, 1) or group != 1:
        raise NotImplementedError("only non-overlapping, unpadded convolutions (a ViT patch embedding)")
    n, c, h, wd = x.shape
    gh, gw = h // kh, wd // kw
    patches = x[:, :, : gh * kh, : gw * kw].reshape(n, c, gh, kh, gw, kw).transpose(0, 2, 4, 1, 3, 5)
    out = patches.reshape(n, gh, gw, -1) @ w.reshape(w.shape[0], -1).T
    if bias is not None:
        out = out + bias
    return out.transpose(0, 3, 1, 2).astype(np.float32)


def _slice(data, starts, ends, axes=None, steps=None):
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * data.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[int(a)] = slice(int(s), int(min(e, np.iinfo(np.int64).max)), int(st))
    return data[tuple(index)]


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)


OPS: dict[str, Callable] = {
    "Constant": lambda value: value,
    "Shape": lambda x: np.array(x.shape, dtype=np.int64),
    "Cast": lambda x, to: x.astype(_DTYPES[to]),
    "Gather": lambda data, idx, axis=0: np.take(data, idx, axis=axis),
    "Conv": _conv,
    "Unsqueeze": lambda x, axes: np.expand_dims(x, tuple(int(a) for a in axes)),
    "Concat": lambda *xs, axis: np.concatenate(xs, axis=axis),
    "Slice": _slice,
    "Reshape": lambda x, shape, allowzero=0: x.reshape([x.shape[i] if s == 0 and not allowzero else s
                                                        for i, s in enumerate(shape)]),
    "ConstantOfShape": lambda shape, value=np.zeros(1, np.float32): np.full(tuple(shape), value.item(), value.dtype),
    "Transpose": lambda x, perm=None: np.transpose(x, perm),
    "Mul": lambda a, b: a * b,
    "Add": lambda a, b: a + b,
    "Sub": lambda a, b: a - b,
    "Div": lambda a, b: a / b,
    "Pow": lambda a, b: np.power(a, b).astype(a.dtype),
    "Sqrt": np.sqrt,
    "Equal": lambda a, b: a == b,
    "Where": lambda c, a, b: np.where(c, a, b),
    "Expand": lambda x, shape: x * np.ones(tuple(shape), dtype=x.dtype),
    "ReduceMean": lambda x, axes, keepdims=1: x.mean(axis=tuple(axes), keepdims=bool(keepdims)).astype(x.dtype),
    "DynamicQuantizeLinear": dynamic_quantize_linear,
    "MatMulInteger": matmul_integer,
    "MatMul": lambda a, b: np.matmul(a, b),
    "Softmax": _softmax,
    "Sigmoid": lambda x: (1.0 / (1.0 + np.exp(-x))).astype(x.dtype),
}


def run(model, feeds: dict[str, np.ndarray], outputs: Iterable[str],
        pinned: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Evaluate ``model`` (an ``onnx.ModelProto``) node by node; returns the named values.

    ``pinned`` values replace what their nodes compute (kept as ``<name>@computed``), so
    each block can be replayed from another runtime's input to it, without compounding.
    """
    from onnx import numpy_helper

    pinned = pinned or {}
    values: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    values.update(feeds)
    for node in model.graph.node:
        if node.op_type not in OPS:
            raise NotImplementedError(f"operator {node.op_type} is not replayed")
        args = [values[i] if i else None for i in node.input]
        while args and args[-1] is None:
            args.pop()
        result = OPS[node.op_type](*args, **_attrs(node))
        for name, value in zip(node.output, result if isinstance(result, tuple) else (result,)):
            if name in pinned:
                values[name + "@computed"], value = value, pinned[name]
            values[name] = np.asarray(value)
    return {name: values[name] for name in outputs}
