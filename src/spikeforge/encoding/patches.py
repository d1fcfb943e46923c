"""Image patches as a data transform, and the inverse (patches back to images).

A ``size_px x size_px`` window is slid over each image with step ``stride_px`` in both directions;
``stride_px < size_px`` gives overlapping patches, ``stride_px == size_px`` disjoint ones (tiles).
The patch at grid position ``(r, c)`` is ``image[r*stride : r*stride+size, c*stride : c*stride+size]``
flattened row-major, so an image of ``H x W`` pixels gives a grid of
``((H - size) // stride + 1) x ((W - size) // stride + 1)`` patches. When the stride does not divide
``H - size`` the last rows/columns of pixels are not covered by any patch (they are never padded);
:func:`fold_patches` then returns 0 for them.

``count`` (optional) keeps a random subset of ``count`` patch positions per image, drawn without
replacement from an explicit ``torch.Generator`` (a different subset for every image). This is how
training patches are sampled; feature extraction uses every position.

All functions work on batches (``[batch, H, W]`` tensors) with :func:`torch.nn.functional.unfold` /
:func:`torch.nn.functional.fold`, so a whole batch of images is cut in one call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from ..config import ConfigError, Params


class PatchParams(Params):
    """How images are cut into patches.

    Defaults (7 x 7, stride 3) follow the talk "Building and Training Spiking Neural Networks"
    (patches of 5 x 5 or 7 x 7 with strides of 1 to 3); on 28 x 28 MNIST they give an 8 x 8 grid
    that covers every pixel.
    """

    size_px: int = Field(7, ge=1, description="side of a square patch (pixels)")
    stride_px: int = Field(
        3, ge=1, description="step between patch origins (pixels); < size_px overlaps, == size_px tiles"
    )
    count: int | None = Field(None, ge=1, description="random patches kept per image (None: all positions)")


def _check(image_hw: tuple[int, int], size_px: int, stride_px: int) -> None:
    h, w = int(image_hw[0]), int(image_hw[1])
    if int(size_px) < 1:
        raise ConfigError(f"patch size_px = {size_px} must be >= 1")
    if int(stride_px) < 1:
        raise ConfigError(f"patch stride_px = {stride_px} must be >= 1 (a stride of 0 never moves)")
    if size_px > h or size_px > w:
        raise ConfigError(
            f"patch size_px = {size_px} is larger than the image ({h} x {w} pixels); "
            f"use a patch of at most {min(h, w)} pixels"
        )


def patch_grid_shape(image_hw: tuple[int, int], size_px: int, stride_px: int) -> tuple[int, int]:
    """Number of patch positions ``(rows, cols)`` for an image of ``image_hw`` pixels."""
    _check(image_hw, size_px, stride_px)
    h, w = int(image_hw[0]), int(image_hw[1])
    return (h - size_px) // stride_px + 1, (w - size_px) // stride_px + 1


def patch_origins(image_hw: tuple[int, int], size_px: int, stride_px: int) -> torch.Tensor:
    """``[n_positions, 2]`` (row, col) of each patch's top-left pixel, in :func:`extract_patches`
    order (row-major over the grid)."""
    gr, gc = patch_grid_shape(image_hw, size_px, stride_px)
    rows = torch.arange(gr) * stride_px
    cols = torch.arange(gc) * stride_px
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).reshape(-1, 2)


def extract_patches(
    images: torch.Tensor,
    size_px: int,
    stride_px: int,
    count: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Cut a batch of images into flattened patches.

    Parameters
    ----------
    images:
        ``[batch, H, W]`` (one channel) tensor of any float dtype (integers are converted to float32).
    size_px, stride_px:
        patch side and step in pixels (see module docstring).
    count:
        if given, keep ``count`` random positions per image (without replacement) drawn from
        ``generator``; ``None`` keeps every position.

    Returns
    -------
    ``[batch, n_patches, size_px * size_px]``; with ``count=None`` patch ``k`` is at grid position
    ``divmod(k, grid_cols)``.
    """
    if images.dim() != 3:
        raise ConfigError(f"images must be [batch, H, W], got shape {tuple(images.shape)}")
    _check(images.shape[1:], size_px, stride_px)
    x = images if images.is_floating_point() else images.to(torch.float32)
    cols = F.unfold(x.unsqueeze(1), kernel_size=size_px, stride=stride_px)  # [B, p*p, L]
    patches = cols.transpose(1, 2)  # [B, L, p*p]
    if count is None:
        return patches.contiguous()
    n_pos = patches.shape[1]
    if count > n_pos:
        raise ConfigError(
            f"patch count = {count} exceeds the {n_pos} positions per image (size {size_px}, stride {stride_px})"
        )
    keys = torch.rand((patches.shape[0], n_pos), generator=generator)
    idx = keys.argsort(dim=1)[:, :count].to(patches.device)
    return torch.gather(patches, 1, idx.unsqueeze(-1).expand(-1, -1, patches.shape[2]))


def fold_patches(patches: torch.Tensor, image_hw: tuple[int, int], size_px: int, stride_px: int) -> torch.Tensor:
    """Inverse of :func:`extract_patches` (all positions): put patches back in place and average
    where they overlap. Pixels covered by no patch are 0.

    ``patches``: ``[batch, n_positions, size_px * size_px]`` -> ``[batch, H, W]``.
    """
    gr, gc = patch_grid_shape(image_hw, size_px, stride_px)
    if patches.dim() != 3 or patches.shape[1] != gr * gc or patches.shape[2] != size_px * size_px:
        raise ConfigError(
            f"patches of shape {tuple(patches.shape)} do not match a {gr} x {gc} grid of "
            f"{size_px} x {size_px} patches; expected [batch, {gr * gc}, {size_px * size_px}]"
        )
    h, w = int(image_hw[0]), int(image_hw[1])
    cols = patches.transpose(1, 2)
    summed = F.fold(cols, output_size=(h, w), kernel_size=size_px, stride=stride_px)
    ones = torch.ones((1, size_px * size_px, gr * gc), dtype=patches.dtype, device=patches.device)
    cover = F.fold(ones, output_size=(h, w), kernel_size=size_px, stride=stride_px)
    return (summed / cover.clamp_min(1.0)).squeeze(1)


def coverage(image_hw: tuple[int, int], size_px: int, stride_px: int) -> torch.Tensor:
    """``[H, W]`` number of patches covering each pixel (0 where the grid leaves pixels out)."""
    gr, gc = patch_grid_shape(image_hw, size_px, stride_px)
    ones = torch.ones((1, size_px * size_px, gr * gc))
    return F.fold(ones, output_size=tuple(int(v) for v in image_hw), kernel_size=size_px, stride=stride_px)[0, 0]
