"""Value mutations: another JSON value for a header field, float32 steps with one value changed, an initializer's
values, type or shape changed, JSON nested deep."""

from __future__ import annotations

import base64
import random
from typing import Any

import numpy as np


def mutate_value(rng: random.Random, old: Any) -> Any:
    """Another JSON value for a header field: a neighbour of ``old`` of its type, or anything else."""
    anything: list[Any] = [
        None,
        True,
        False,
        0,
        1,
        -1,
        2**31,
        2**32,
        2**63,
        -(2**63),
        2**64 + 1,
        10**30,
        1.5,
        float("inf"),
        float("nan"),
        "",
        "x",
        "int8",
        "uint8",
        "ans",
        [],
        {},
        [1, 2],
        "A" * 1000,
        {"a": 1},
        [[1]],
        -0.0,
    ]
    near: list[Any] = []
    if isinstance(old, bool):
        near = [not old, int(old)]
    elif isinstance(old, int):
        near = [old + 1, old - 1, old * 2, old // 2, -old, old ^ (1 << rng.randrange(32)), float(old), str(old)]
    elif isinstance(old, str):
        from runtime.codecs import CODECS

        near = [old + "x", old[:-1], old.upper(), *CODECS, "int8", "uint8", "none", old * 2, old[::-1]]
        if old and len(old) < 100_000:  # a base64 steps string: damage a character
            i = rng.randrange(len(old))
            near.append(old[:i] + rng.choice("AB/+=x") + old[i + 1 :])
            near.append(_steps_variant(rng, old))
    elif isinstance(old, list):
        near = [old[::-1], [*old, 1], old[:-1], old * 2, [old], [str(v) for v in old]]
        if old and all(isinstance(v, int) for v in old):
            i = rng.randrange(len(old))
            near += [
                [v * 2 if j == i else v for j, v in enumerate(old)],
                [v + 1 if j == i else v for j, v in enumerate(old)],
                [-v if j == i else v for j, v in enumerate(old)],
                sorted(old),
            ]
    elif isinstance(old, dict):
        near = [{}, {**old, "x": 1}, dict(list(old.items())[:-1])]
    return rng.choice(near) if near and rng.random() < 0.7 else rng.choice(anything)


def _steps_variant(rng: random.Random, steps: str) -> str:
    """Base64 float32 steps with one value changed (or one more or fewer)."""
    try:
        values = np.frombuffer(base64.b64decode(steps, validate=True), "<f4").copy()
    except Exception:
        return steps + "A"
    if values.size == 0:
        return base64.b64encode(np.ones(1, "<f4").tobytes()).decode()
    i = rng.randrange(values.size)
    how = rng.choice(("next", "double", "negate", "zero", "nan", "inf", "tiny", "more", "fewer"))
    if how == "more":
        values = np.append(values, values[-1])
    elif how == "fewer":
        values = values[:-1]
    else:
        values[i] = {
            "next": np.nextafter(values[i], np.float32(np.inf)),
            "double": values[i] * 2,
            "negate": -values[i],
            "zero": 0,
            "nan": np.nan,
            "inf": np.inf,
            "tiny": np.float32(1e-45),
        }[how]
    return base64.b64encode(values.astype("<f4").tobytes()).decode()


def edit_array(rng: random.Random, init: Any) -> str:
    """Change an initializer's values, type or shape in place; returns what was done."""
    from onnx import numpy_helper

    arr = numpy_helper.to_array(init).copy()
    how = rng.choice(("one", "one", "all", "dtype", "shape"))
    if how in ("one", "all") and arr.size:
        flat = arr.reshape(-1)
        index = slice(None) if how == "all" else rng.randrange(flat.size)
        if np.issubdtype(flat.dtype, np.floating):
            op = rng.choice(("next", "double", "negate", "zero", "nan", "inf", "huge", "tiny"))
            value = flat[index]
            flat[index] = {
                "next": np.nextafter(value, flat.dtype.type(np.inf)),
                "double": value * 2,
                "negate": -value,
                "zero": 0,
                "nan": np.nan,
                "inf": np.inf,
                "huge": 1e30,
                "tiny": 1e-40,
            }[op]
        else:
            op = rng.choice(("plus", "minus", "zero", "max", "min", "xor"))
            wide = flat[index].astype(np.int64)
            info = np.iinfo(flat.dtype)
            new = {
                "plus": wide + 1,
                "minus": wide - 1,
                "zero": wide * 0,
                "max": wide * 0 + info.max,
                "min": wide * 0 + info.min,
                "xor": wide ^ 0x40,
            }[op]
            flat[index] = np.asarray(new).astype(flat.dtype)
        arr = flat.reshape(arr.shape)
        done = f"{how} {op}"
    elif how == "dtype":
        arr = arr.astype(rng.choice((np.float16, np.float64, np.int32, np.int8, np.uint8, np.int64)))
        done = "dtype"
    else:
        shaped = rng.choice(("flat", "expand", "shorter", "longer"))
        if shaped == "flat":
            arr = arr.reshape(-1)
        elif shaped == "expand":
            arr = arr[None]
        elif shaped == "shorter":
            arr = arr.reshape(-1)[:-1]
        else:
            arr = np.concatenate([arr.reshape(-1), arr.reshape(-1)[:1]])
        done = f"shape {shaped}"
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    return done


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth
