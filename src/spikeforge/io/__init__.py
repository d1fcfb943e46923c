"""Files: checkpoints (safetensors + JSON, no pickle) and atomic writes for results."""

from .checkpoint import (
    CheckpointError,
    CheckpointPaths,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    atomic_writer,
    check_shapes,
    checkpoint_exists,
    checkpoint_paths,
    load_checkpoint,
    read_checkpoint_info,
    save_checkpoint,
    to_json_text,
)

__all__ = [
    "CheckpointError",
    "CheckpointPaths",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "atomic_writer",
    "check_shapes",
    "checkpoint_exists",
    "checkpoint_paths",
    "load_checkpoint",
    "read_checkpoint_info",
    "save_checkpoint",
    "to_json_text",
]
