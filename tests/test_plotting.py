import numpy as np
import pytest
import torch
from PIL import Image

from spikeforge.plotting import (
    grid_shape,
    plot_confusion,
    plot_curves,
    plot_histogram,
    plot_weight_grid,
    weight_mosaic,
)


def _is_png(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def _no_temp_files(directory):
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("n", [1, 7, 100])
def test_weight_grid_sizes(tmp_path, n):
    w = np.random.default_rng(n).random((784, n))
    path = plot_weight_grid(w, tmp_path / "sub" / f"w{n}.png")
    assert path == tmp_path / "sub" / f"w{n}.png"
    width, height = _is_png(path)
    assert 300 < width < 3000 and 300 < height < 3000
    _no_temp_files(tmp_path / "sub")


def test_weight_grid_torch_and_other_shapes(tmp_path):
    w = torch.rand(12, 5)  # 3x4 images
    _is_png(plot_weight_grid(w, tmp_path / "t.png", image_shape=(3, 4), title="tiny"))
    with pytest.raises(ValueError, match=r"784 inputs .* \(20, 20\) has 400 pixels"):
        plot_weight_grid(np.zeros((784, 3)), tmp_path / "bad.png", image_shape=(20, 20))
    assert not (tmp_path / "bad.png").exists()


def test_grid_shape_and_mosaic_layout():
    assert grid_shape(1) == (1, 1)
    assert grid_shape(7) == (3, 3)
    assert grid_shape(100) == (10, 10)
    assert grid_shape(6400) == (80, 80)
    assert grid_shape(400) == (20, 20)
    w = np.arange(2 * 3 * 5, dtype=float).reshape(6, 5)  # 2x3 images, 5 neurons -> 2x3 grid
    m = weight_mosaic(w, (2, 3))
    assert m.shape == (2 * 2 + 1, 3 * 3 + 2)
    np.testing.assert_array_equal(m[0:2, 0:3], w[:, 0].reshape(2, 3))
    np.testing.assert_array_equal(m[3:5, 4:7], w[:, 4].reshape(2, 3))  # neuron 4: row 1, col 1
    assert np.isnan(m[2]).all() and np.isnan(m[3:5, 8:11]).all()  # gap row, unused tile


def test_confusion(tmp_path):
    cm = np.array([[5, 1], [0, 4]])
    _is_png(plot_confusion(cm, tmp_path / "cm.png", class_names=["a", "b"]))
    _is_png(plot_confusion(np.zeros((10, 10)), tmp_path / "empty.png"))
    with pytest.raises(ValueError, match="square"):
        plot_confusion(np.zeros((2, 3)), tmp_path / "x.png")


def test_histogram(tmp_path):
    theta = np.random.default_rng(0).normal(40, 5, 400)
    _is_png(plot_histogram(theta, tmp_path / "h.png", xlabel="theta (mV)", title="theta"))
    _is_png(plot_histogram(np.array([3.0, np.nan]), tmp_path / "h2.png", "x", "one value"))
    with pytest.raises(ValueError, match="no finite values"):
        plot_histogram([np.nan], tmp_path / "h3.png", "x", "t")


def test_curves(tmp_path):
    curves = {"train": [0.1, 0.5, 0.8], "test": np.linspace(0, 1, 50)}
    _is_png(plot_curves(curves, tmp_path / "c.png", "examples", "accuracy", x={"train": [100, 200, 300]}))
    with pytest.raises(ValueError, match="3 values but 2 x positions"):
        plot_curves({"a": [1, 2, 3]}, tmp_path / "d.png", "x", "y", x=[1, 2])
    with pytest.raises(ValueError, match="non-empty"):
        plot_curves({}, tmp_path / "e.png", "x", "y")
    _no_temp_files(tmp_path)


def _pixels(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def _near(px, rgb, tol=40):
    return int((np.abs(px - np.array(rgb)).sum(axis=2) < tol).sum())


def test_a_curve_of_one_point_is_visible_and_a_long_one_is_thinned(tmp_path):
    p = plot_curves({"loss": [0.7]}, tmp_path / "one.png", "iteration", "loss", x=[1])
    assert _near(_pixels(p), (31, 119, 180)) > 10  # the marker, in the first colour of the cycle
    long = np.abs(np.sin(np.arange(100_000) / 500.0)) + 0.1
    p = plot_curves({"loss": long}, tmp_path / "long.png", "iteration", "loss", logy=True)
    assert _near(_pixels(p), (31, 119, 180)) > 100


def test_a_raster_of_many_examples_is_not_covered_by_its_boundaries(tmp_path):
    from spikeforge.plotting.figures import plot_raster

    rng = np.random.default_rng(0)
    n_ex, steps_per = 1000, 1000
    steps = np.concatenate([i * steps_per + rng.integers(0, steps_per, 20) for i in range(n_ex)])
    neurons = rng.integers(0, 100, steps.size)
    bounds = [i * steps_per * 0.5 for i in range(n_ex)]
    px = _pixels(plot_raster(steps, neurons, tmp_path / "r.png", dt_ms=0.5, n_neurons=100, boundaries_ms=bounds))
    red = _near(px, (192, 57, 43), tol=120)
    dark = _near(px, (34, 34, 34), tol=120)
    assert red < 0.02 * px.shape[0] * px.shape[1]  # boundaries as ticks, not 1000 lines over the spikes
    assert dark > 5000  # the spikes are visible
