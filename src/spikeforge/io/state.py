"""Training state (optimizer, scheduler) in checkpoints without pickle: tensors go to the
safetensors file, the structure around them to the JSON metadata."""

from __future__ import annotations

from typing import Any


def _is_tensor(obj: Any) -> bool:
    return type(obj).__module__.startswith("torch") and hasattr(obj, "detach")


def flatten_state(obj: Any, prefix: str, tensors: dict[str, Any]) -> Any:
    """``obj`` (nested dicts/lists/tuples holding tensors, e.g. an optimizer's ``state_dict()``)
    as JSON-able data; each tensor is moved into ``tensors`` under a dotted name and replaced by a
    reference to it. :func:`unflatten_state` rebuilds ``obj``."""
    if _is_tensor(obj):
        tensors[prefix] = obj.detach().cpu().contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {"__dict__": [[_key(k), flatten_state(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {
            "__list__": [flatten_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)],
            "tuple": isinstance(obj, tuple),
        }
    return obj


def _key(k):
    return k if isinstance(k, (str, int)) else str(k)


def unflatten_state(obj: Any, tensors: dict[str, Any]) -> Any:
    """The inverse of :func:`flatten_state`."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {k: unflatten_state(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            items = [unflatten_state(v, tensors) for v in obj["__list__"]]
            return tuple(items) if obj.get("tuple") else items
    return obj
