import argparse
import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

import spikeforge.data.mnist as mnist_mod
from spikeforge.config import ConfigError
from spikeforge.data import (
    MNIST_FILES,
    DataError,
    download_mnist,
    load_dataset,
    load_embedded,
    load_mnist,
    read_idx,
    write_idx,
)

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
needs_shared = pytest.mark.skipif(
    not (SHARED_MNIST / "train-labels-idx1-ubyte.gz").is_file(), reason="shared MNIST not present"
)
ALL_NAMES = [n for pair in MNIST_FILES.values() for n in pair]


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """IDX bytes built by hand (independently of write_idx)."""
    header = bytes([0, 0, code, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def fake_split(rng, n):
    return (rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n, dtype=np.uint8))


def write_fake_mnist(directory: Path, gz: bool = True, n_train=12, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = fake_split(rng, n)
        img_name, lbl_name = MNIST_FILES[split]
        suffix = ".gz" if gz else ""
        write_idx(directory / (img_name + suffix), images)
        write_idx(directory / (lbl_name + suffix), labels)
        out[split] = (images, labels)
    return out


# ---------------------------------------------------------------- IDX reader


@pytest.mark.parametrize("gz", [False, True])
def test_idx_hand_built_bytes(tmp_path, gz):
    cases = [
        (np.arange(24, dtype=np.uint8).reshape(2, 3, 4), 0x08),
        (np.array([-3, 0, 7], dtype=np.int8), 0x09),
        (np.array([[-300, 2], [5, 40000 - 65536]], dtype=np.int16), 0x0B),
        (np.array([1, -2, 2**30], dtype=np.int32), 0x0C),
        (np.array([[0.5, -1.25]], dtype=np.float32), 0x0D),
        (np.array([1e300, -0.0], dtype=np.float64), 0x0E),
    ]
    for i, (arr, code) in enumerate(cases):
        raw = idx_bytes(arr, code)
        path = tmp_path / f"a{i}{'.gz' if gz else ''}"
        path.write_bytes(gzip.compress(raw) if gz else raw)
        got = read_idx(path)
        assert got.dtype == arr.dtype and got.dtype.isnative
        np.testing.assert_array_equal(got, arr)


def test_idx_round_trip_and_limit(tmp_path):
    arr = np.random.default_rng(1).integers(0, 256, (9, 28, 28), dtype=np.uint8)
    for name in ("x.idx", "x.idx.gz"):
        write_idx(tmp_path / name, arr)
        np.testing.assert_array_equal(read_idx(tmp_path / name), arr)
        np.testing.assert_array_equal(read_idx(tmp_path / name, limit=4), arr[:4])
    assert (tmp_path / "x.idx.gz").read_bytes()[:2] == b"\x1f\x8b"
    # gzip is detected from the content, not the name
    shutil.copy(tmp_path / "x.idx.gz", tmp_path / "no_suffix")
    np.testing.assert_array_equal(read_idx(tmp_path / "no_suffix"), arr)


def test_idx_truncated(tmp_path):
    arr = np.zeros((10, 28, 28), dtype=np.uint8)
    raw = idx_bytes(arr, 0x08)
    (tmp_path / "t").write_bytes(raw[: 16 + 1234])
    with pytest.raises(DataError, match=r"truncated: expected 7840 bytes of pixels .*found 1234") as e:
        read_idx(tmp_path / "t")
    assert str(tmp_path / "t") in str(e.value) and "spikeforge data download" in str(e.value)
    # a well-formed gzip stream whose content is short
    (tmp_path / "t.gz").write_bytes(gzip.compress(raw[: 16 + 1234]))
    with pytest.raises(DataError, match="expected 7840 bytes of pixels"):
        read_idx(tmp_path / "t.gz")
    # header cut short
    (tmp_path / "h").write_bytes(raw[:10])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "h")


def test_idx_too_long(tmp_path):
    raw = idx_bytes(np.zeros(5, dtype=np.uint8), 0x08) + b"\x00\x00\x00"
    (tmp_path / "l").write_bytes(raw)
    with pytest.raises(DataError, match=r"too long: expected 5 bytes of labels .*found 8"):
        read_idx(tmp_path / "l")


def test_idx_bad_magic_and_dtype(tmp_path):
    (tmp_path / "m").write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(DataError, match="not an IDX file") as e:
        read_idx(tmp_path / "m")
    assert str(tmp_path / "m") in str(e.value)
    (tmp_path / "d").write_bytes(bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]))
    with pytest.raises(DataError, match="type code"):
        read_idx(tmp_path / "d")


def test_idx_corrupted_gzip(tmp_path):
    raw = idx_bytes(np.random.default_rng(2).integers(0, 256, 5000, dtype=np.uint8), 0x08)
    data = bytearray(gzip.compress(raw))
    (tmp_path / "cut.gz").write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(DataError, match="gzip") as e:
        read_idx(tmp_path / "cut.gz")
    assert "spikeforge data download" in str(e.value)
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "flip.gz").write_bytes(bytes(data))
    with pytest.raises(DataError, match="gzip"):
        read_idx(tmp_path / "flip.gz")


def test_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope.gz")
    assert issubclass(DataError, ConfigError)


# ---------------------------------------------------------------- load_mnist


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_from_dir(tmp_path, gz):
    fake = write_fake_mnist(tmp_path, gz=gz)
    for split in ("train", "test"):
        images, labels = load_mnist(tmp_path, split)
        np.testing.assert_array_equal(images, fake[split][0])
        np.testing.assert_array_equal(labels, fake[split][1])
    images, labels = load_mnist(tmp_path, "train", limit=3)
    assert images.shape == (3, 28, 28) and labels.shape == (3,)
    with pytest.raises(DataError, match="asked for 13 train examples .* only 12"):
        load_mnist(tmp_path, "train", limit=13)
    with pytest.raises(DataError, match="split must be"):
        load_mnist(tmp_path, "validation")


def test_load_mnist_finds_mnist_subdir_and_env(tmp_path, monkeypatch):
    fake = write_fake_mnist(tmp_path / "mnist")
    np.testing.assert_array_equal(load_mnist(tmp_path, "test")[1], fake["test"][1])
    monkeypatch.setenv("SPIKEFORGE_DATA", str(tmp_path))
    np.testing.assert_array_equal(load_mnist(None, "test")[1], fake["test"][1])
    np.testing.assert_array_equal(load_dataset(None, "test")[1], fake["test"][1])


def test_missing_dir_names_the_files(tmp_path):
    for directory in (tmp_path / "absent", tmp_path):
        with pytest.raises(DataError) as e:
            load_mnist(directory, "train")
        msg = str(e.value)
        for name in ALL_NAMES:
            assert name in msg
        assert "spikeforge data download --dir" in msg and str(directory) in msg


def test_count_mismatch(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = fake_split(rng, 6)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:5])
    with pytest.raises(DataError, match="6 images but .* 5 labels"):
        load_mnist(tmp_path, "test")


def test_test_labels_beside_training_images_are_refused_even_with_a_limit(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = fake_split(rng, 12)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels[:7])  # another set's labels file
    with pytest.raises(DataError, match="12 images but .* 7 labels.*different sets"):
        load_mnist(tmp_path, "train", limit=3)


def test_data_dir_that_is_a_file_says_so(tmp_path):
    f = tmp_path / "mnist.zip"
    f.write_bytes(b"PK")
    with pytest.raises(DataError, match="is a file, not a directory"):
        load_mnist(f, "train")


def test_swapped_files(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = fake_split(rng, 6)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", labels)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", images)
    with pytest.raises(DataError, match="expected uint8 images"):
        load_mnist(tmp_path, "test")


@needs_shared
def test_real_mnist_first_rows():
    images, labels = load_mnist(SHARED_MNIST, "train", limit=10)
    assert images.shape == (10, 28, 28) and images.dtype == np.uint8
    assert labels.tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    images, labels = load_mnist(SHARED_MNIST, "test", limit=5)
    assert labels.tolist() == [7, 2, 1, 0, 4]
    assert images.max() == 255 and images.min() == 0


# ---------------------------------------------------------------- embedded subset


def test_embedded_subset(monkeypatch):
    images, labels = load_embedded("train")
    assert images.shape == (3000, 28, 28) and labels.shape == (3000,)
    assert images.dtype == np.uint8 and labels.dtype == np.uint8
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert set(np.unique(labels)) == set(range(10))
    images, labels = load_embedded("test", limit=5)
    assert images.shape == (5, 28, 28) and labels.tolist() == [7, 2, 1, 0, 4]
    monkeypatch.delenv("SPIKEFORGE_DATA", raising=False)
    assert load_dataset(None, "test", limit=7)[0].shape == (7, 28, 28)
    assert load_mnist("embedded", "train", limit=2)[1].tolist() == [5, 0]
    with pytest.raises(DataError, match=r"only 3000.*--data-dir"):
        load_dataset(None, "train", limit=3001)
    with pytest.raises(DataError, match=r"only 1000.*--data-dir"):
        load_embedded("test", limit=60000)


@needs_shared
def test_embedded_matches_shared():
    a, b = load_embedded("test")
    c, d = load_mnist(SHARED_MNIST, "test", limit=1000)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(b, d)


# ---------------------------------------------------------------- download


@pytest.fixture
def small_official(tmp_path, monkeypatch):
    """Small fake 'official' files: their md5s replace the real ones for the test."""
    good = tmp_path / "good"
    bad = tmp_path / "bad"
    write_fake_mnist(good, gz=True, seed=1)
    write_fake_mnist(bad, gz=True, seed=2)  # valid gzip/IDX, wrong content
    for name in ALL_NAMES:
        digest = hashlib.md5(gzip.decompress((good / f"{name}.gz").read_bytes())).hexdigest()
        monkeypatch.setitem(mnist_mod.MNIST_MD5, name, digest)
    (tmp_path / "junk").mkdir()
    for name in ALL_NAMES:  # not gzip at all
        (tmp_path / "junk" / f"{name}.gz").write_bytes(b"<html>not found</html>")
    return tmp_path


def test_download_falls_back_to_next_mirror(small_official, tmp_path):
    dest = tmp_path / "dest"
    mirrors = [
        (tmp_path / "nothing-here").as_uri(),
        (tmp_path / "bad").as_uri(),
        (tmp_path / "junk").as_uri() + "/",
        (tmp_path / "good").as_uri(),
    ]
    messages = []
    paths = download_mnist(dest, mirrors, log=messages.append)
    assert sorted(paths) == sorted(ALL_NAMES)
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{n}.gz" for n in ALL_NAMES)
    assert any("md5" in m for m in messages)
    good = load_mnist(tmp_path / "good", "train")
    got = load_mnist(dest, "train")
    np.testing.assert_array_equal(got[0], good[0])
    # second run: everything is present and valid, no mirror is contacted
    messages.clear()
    download_mnist(dest, [(tmp_path / "nothing-here").as_uri()], log=messages.append)
    assert all("already present" in m for m in messages)


def test_download_replaces_corrupt_file(small_official, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    shutil.copy(tmp_path / "bad" / "t10k-labels-idx1-ubyte.gz", dest / "t10k-labels-idx1-ubyte.gz")
    (dest / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    download_mnist(dest, [(tmp_path / "good").as_uri()])
    assert (dest / "t10k-images-idx3-ubyte.bad").is_file()
    assert not (dest / "t10k-images-idx3-ubyte").exists()
    np.testing.assert_array_equal(load_mnist(dest, "test")[1], load_mnist(tmp_path / "good", "test")[1])
    assert not [p for p in dest.iterdir() if p.name.endswith(".tmp")]


def test_download_all_mirrors_fail(small_official, tmp_path):
    dest = tmp_path / "dest"
    mirrors = [(tmp_path / "bad").as_uri(), (tmp_path / "junk").as_uri(), (tmp_path / "nothing-here").as_uri()]
    with pytest.raises(DataError) as e:
        download_mnist(dest, mirrors)
    msg = str(e.value)
    assert "could not download train-images-idx3-ubyte.gz" in msg
    assert "md5" in msg and "not a gzip file" in msg and "--mirror" in msg
    for m in mirrors:
        assert m in msg
    assert not [p for p in dest.iterdir()]  # nothing half-written


@needs_shared
def test_download_real_files_from_file_mirror(tmp_path):
    paths = download_mnist(tmp_path / "d", [SHARED_MNIST.as_uri()])
    assert len(paths) == 4
    assert load_mnist(tmp_path / "d", "test", limit=3)[1].tolist() == [7, 2, 1]


# ---------------------------------------------------------------- CLI


def _data_cli(argv):
    from spikeforge.cli import data as cli_data

    parser = argparse.ArgumentParser(prog="spikeforge")
    cli_data.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_check_and_download(small_official, tmp_path, capsys):
    dest = tmp_path / "dest"
    assert (
        _data_cli(
            [
                "data",
                "download",
                "--dir",
                str(dest),
                "--mirror",
                (tmp_path / "bad").as_uri(),
                "--mirror",
                (tmp_path / "good").as_uri(),
            ]
        )
        == 0
    )
    assert _data_cli(["data", "check", "--data-dir", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "train: 12 images of 28x28, 12 labels" in out and "test: 5 images" in out
    assert _data_cli(["data", "check", "--data-dir", str(tmp_path / "bad")]) == 1
    assert "PROBLEM" in capsys.readouterr().out
    with pytest.raises(DataError, match="spikeforge data download"):
        _data_cli(["data", "check", "--data-dir", str(tmp_path / "empty")])
