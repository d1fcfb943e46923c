"""Files: atomic writes (every file spikeforge writes) and checkpoints (one safetensors file each,
no pickle, switched atomically with the previous one kept)."""

from .atomic import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    atomic_writer,
    remove_stale_temporaries,
    to_json_text,
)
from .checkpoint import (
    CheckpointError,
    CheckpointFallbackWarning,
    CheckpointPaths,
    check_shapes,
    checkpoint_exists,
    checkpoint_paths,
    load_checkpoint,
    read_checkpoint_info,
    save_checkpoint,
)

__all__ = [
    "CheckpointError",
    "CheckpointFallbackWarning",
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
    "remove_stale_temporaries",
    "save_checkpoint",
    "to_json_text",
]
