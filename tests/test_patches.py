"""Patch extraction against direct slicing; folding back; bad sizes and strides."""

import pytest
import torch

from spikeforge.config import ConfigError
from spikeforge.encoding.patches import (
    PatchParams,
    coverage,
    extract_patches,
    fold_patches,
    patch_grid_shape,
    patch_origins,
)


@pytest.mark.parametrize("size,stride", [(5, 2), (7, 3), (4, 4), (1, 1), (9, 9)])
def test_extract_matches_direct_slices(size, stride):
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(3, 11, 9, generator=g)
    out = extract_patches(imgs, size, stride)
    gr, gc = patch_grid_shape((11, 9), size, stride)
    assert out.shape == (3, gr * gc, size * size)
    origins = patch_origins((11, 9), size, stride)
    for b in range(3):
        for k, (r, c) in enumerate(origins.tolist()):
            direct = imgs[b, r : r + size, c : c + size].reshape(-1)
            assert torch.equal(out[b, k], direct)


def test_grid_shape_overlapping_and_disjoint():
    assert patch_grid_shape((28, 28), 7, 3) == (8, 8)
    assert patch_grid_shape((28, 28), 7, 7) == (4, 4)
    assert patch_grid_shape((28, 28), 5, 1) == (24, 24)
    assert patch_grid_shape((28, 28), 28, 5) == (1, 1)


def test_random_count_are_distinct_real_patches():
    g = torch.Generator().manual_seed(1)
    imgs = torch.rand(4, 10, 10, generator=g)
    every = extract_patches(imgs, 3, 2)
    some = extract_patches(imgs, 3, 2, count=5, generator=torch.Generator().manual_seed(2))
    assert some.shape == (4, 5, 9)
    for b in range(4):
        idx = [int(torch.nonzero((every[b] == p).all(dim=1))[0]) for p in some[b]]
        assert len(set(idx)) == 5


def test_integer_images_are_accepted():
    imgs = torch.arange(2 * 6 * 6, dtype=torch.uint8).reshape(2, 6, 6)
    out = extract_patches(imgs, 3, 3)
    assert out.dtype == torch.float32
    assert torch.equal(out[1, 3], imgs[1, 3:6, 3:6].reshape(-1).float())


@pytest.mark.parametrize("size,stride", [(7, 3), (4, 4), (3, 1)])
def test_fold_inverts_extract_where_covered(size, stride):
    img = torch.rand(2, 13, 13)
    back = fold_patches(extract_patches(img, size, stride), (13, 13), size, stride)
    cov = coverage((13, 13), size, stride) > 0
    assert torch.allclose(back[:, cov], img[:, cov], atol=1e-6)
    assert torch.equal(back[:, ~cov], torch.zeros_like(back[:, ~cov]))


def test_patch_larger_than_image_is_an_error():
    with pytest.raises(ConfigError, match="larger than the image"):
        extract_patches(torch.zeros(1, 28, 28), 29, 1)


def test_stride_zero_is_an_error():
    with pytest.raises(ConfigError, match="stride"):
        extract_patches(torch.zeros(1, 28, 28), 5, 0)
    with pytest.raises(ConfigError, match="stride_px"):
        PatchParams.from_dict({"stride_px": 0})


def test_too_many_random_patches_is_an_error():
    with pytest.raises(ConfigError, match="count"):
        extract_patches(torch.zeros(1, 6, 6), 3, 3, count=5)
