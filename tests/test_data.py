"""Datasets: every registered dataset loads; archives are checked; splits, caches and augmentation behave."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnviz.data as data
from cnnviz.data import (
    AUG_PRESETS, DatasetError, DatasetUnavailable, augment_batch, get_dataset_spec, list_datasets, load_dataset,
    load_splits, normalize,
)
from cnnviz.data import archive, cache, download, images, sources
from cnnviz.training.config import AUGMENTS, TrainConfig
from data_helpers import (
    coarse_of, image_bytes, write_cifar10_pickles, write_cifar100_pickles, write_class_folders, write_hymenoptera,
    write_zip,
)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Tests never download: a missing dataset must fail at once with its message."""
    def refuse(url, dest, **kwargs):
        raise OSError("network disabled in tests")
    monkeypatch.setattr(sources, "fetch", refuse)
    cache.clear_memory()


def tiny_source(name: str, tmp_path: Path) -> dict:
    """Keyword arguments that make ``load_dataset(name, ...)`` find a tiny dataset written in its real format."""
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    if name == "hymenoptera":
        write_hymenoptera(root)
    elif name == "cifar10":
        write_cifar10_pickles(root)
    elif name == "cifar100":
        write_cifar100_pickles(root, n_fine=10, n_coarse=5)
    elif name == "folder":
        return {"path": write_class_folders(tmp_path, ["cats", "dogs", "owls"], 5, 30, zip=True)}
    return {"root": root}


# -- registry ---------------------------------------------------------------------------------------------------

def test_registry_lists_every_dataset_and_refuses_duplicates():
    assert list_datasets()[0] == "shapes"
    assert {"shapes", "hymenoptera", "cifar10", "cifar100", "folder"} <= set(list_datasets())
    with pytest.raises(ValueError, match="already registered"):
        data.register(get_dataset_spec("shapes"))
    with pytest.raises(DatasetError, match="unknown dataset 'nope'; choose one of: shapes"):
        get_dataset_spec("nope")
    assert set(AUG_PRESETS) == set(AUGMENTS)


@pytest.mark.parametrize("name", list_datasets())
def test_every_dataset_loads_both_splits(name, tmp_path):
    spec = get_dataset_spec(name)
    source = tiny_source(name, tmp_path)
    config = TrainConfig(dataset=name, data_root=str(source.get("root", tmp_path)),
                         data_path=str(source["path"]) if "path" in source else None)
    train, val = load_splits(config, image_size=24)
    for part, split in ((train, "train"), (val, "val")):
        assert part.images.dtype == torch.uint8 and part.images.shape[1:] == (3, 24, 24)
        assert part.labels.dtype == torch.int64 and len(part) == part.images.shape[0] > 0
        assert part.split == split and part.name == name and part.skipped == 0
        assert int(part.labels.max()) < len(part.classes)
    assert train.classes == val.classes and len(train.classes) >= 2
    if spec.num_classes is not None:
        assert len(train.classes) == spec.num_classes or name == "cifar100"  # the tiny CIFAR-100 has 10 fine classes
    assert data.dataset_stats(name)[0] and len(data.dataset_stats(name)[1]) == 3


# -- real data ---------------------------------------------------------------------------------------------------

def test_real_hymenoptera_zip(shared_data):
    train = load_dataset("hymenoptera", root=shared_data, split="train", image_size=64)
    val = load_dataset("hymenoptera", root=shared_data, split="val", image_size=64)
    assert train.classes == ["ants", "bees"]
    assert train.class_counts() == {"ants": 124, "bees": 121}  # the palette-mode picture converts, nothing skipped
    assert val.class_counts() == {"ants": 70, "bees": 83}
    assert train.skipped == val.skipped == 0


def test_real_cifar10_zip_subset(shared_data):
    """A class session's subset decodes only its pictures; the full decode is what a user's first run does."""
    train = load_dataset("cifar10", root=shared_data, split="train", subset=20, seed=1)
    assert train.images.shape == (200, 3, 32, 32)
    assert set(train.class_counts().values()) == {20}
    assert train.classes[:3] == ["airplane", "automobile", "bird"]
    again = load_dataset("cifar10", root=shared_data, split="train", subset=20, seed=1)
    assert torch.equal(train.images, again.images)


# -- zip safety and bad datasets ---------------------------------------------------------------------------------

def _good_files(n: int = 2) -> dict[str, bytes]:
    return {f"{cls}/{i}.jpg": image_bytes(k) for k, cls in enumerate(["a", "b"]) for i in range(n)}


@pytest.mark.parametrize("evil", ["../escape.jpg", "/etc/evil.jpg", "a/../../x.jpg", "C:/windows/x.jpg", "a\\..\\..\\x.jpg"])
def test_zip_with_escaping_path_is_refused(tmp_path, evil):
    path = write_zip(tmp_path / "evil.zip", {**_good_files(), evil: image_bytes(0)})
    with pytest.raises(DatasetError, match="points outside the archive"):
        load_dataset("folder", path=path)


def test_zip_bomb_is_refused(tmp_path):
    files = {**_good_files(), "a/huge.bmp": b"\0" * (3 * 1024**2)}
    path = write_zip(tmp_path / "bomb.zip", files, compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(DatasetError, match="zip bomb"):
        load_dataset("folder", path=path)


def test_oversized_and_crowded_zips_are_refused(tmp_path, monkeypatch):
    path = write_zip(tmp_path / "big.zip", _good_files(3))
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 1000)
    with pytest.raises(DatasetError, match="uncompressed is more than"):
        load_dataset("folder", path=path)
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 10**9)
    monkeypatch.setattr(archive, "MAX_MEMBERS", 4)
    with pytest.raises(DatasetError, match="6 files is more than the 4 allowed"):
        load_dataset("folder", path=path)


def test_not_a_zip_and_missing_path(tmp_path):
    bad = tmp_path / "fake.zip"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(DatasetError, match="neither a folder nor a .zip"):
        load_dataset("folder", path=bad)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("folder", path=tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="needs a path"):
        load_dataset("folder")


def test_one_class_is_refused(tmp_path):
    path = write_class_folders(tmp_path, ["only"], 4, zip=True, wrapper="upload")
    with pytest.raises(DatasetError, match="only one class \\('only'\\)"):
        load_dataset("folder", path=path)


def test_empty_class_folder_is_named(tmp_path):
    folder = write_class_folders(tmp_path, ["cats", "dogs"], 3)
    (folder / "birds").mkdir()
    (folder / "birds" / "notes.txt").write_text("no pictures here")
    with pytest.raises(DatasetError, match="class folder 'birds' has no images"):
        load_dataset("folder", path=folder)
    zipped = write_zip(tmp_path / "empty.zip", {**_good_files(), "c/": b""})
    with pytest.raises(DatasetError, match="class folder 'c' has no images"):
        load_dataset("folder", path=zipped)


def test_no_images_at_all(tmp_path):
    path = write_zip(tmp_path / "text.zip", {"a/readme.txt": b"hello", "b/x.csv": b"1,2"})
    with pytest.raises(DatasetError, match="no images found"):
        load_dataset("folder", path=path)


def test_unreadable_images_are_skipped_and_counted(tmp_path):
    good = image_bytes(1, 30)
    files = {**_good_files(4), "a/broken.jpg": b"\xff\xd8\xff garbage", "b/empty.png": b"",
             "b/truncated.jpg": good[: len(good) // 3], "b/text.jpg": b"hello"}
    path = write_zip(tmp_path / "mixed.zip", files)
    loaded = load_dataset("folder", path=path, image_size=16, val_split="official", split="train", subset=None)
    full = load_dataset("folder", path=path, image_size=16, split="val")
    assert len(loaded) + len(full) == 8
    assert loaded.skipped + full.skipped == 4  # whichever split each broken file fell into


def test_truncated_jpeg_skipped_in_class_folders(tmp_path):
    """The split's decode drops exactly the broken files (no random split involved)."""
    good = image_bytes(1, 30)
    files = {f"train/{k}": v for k, v in _good_files(3).items()}
    files.update({f"val/{k}": v for k, v in _good_files(1).items()})
    files["train/b/truncated.jpg"] = good[: len(good) // 3]
    files["train/a/noise.jpg"] = np.random.default_rng(0).bytes(500)  # seeded: the same noise every run
    loaded = load_dataset("folder", path=write_zip(tmp_path / "s.zip", files), image_size=16)
    assert loaded.skipped == 2 and len(loaded) == 6
    assert loaded.class_counts() == {"a": 3, "b": 3}


def test_class_with_only_broken_images_is_named(tmp_path):
    files = {**_good_files(2), "c/1.jpg": b"junk", "c/2.png": b"junk"}
    with pytest.raises(DatasetError, match="class 'c' could be read"):
        load_dataset("folder", path=write_zip(tmp_path / "c.zip", files), split="train", val_split="official",
                     subset=None, image_size=16, seed=0)


def test_layouts_wrapper_and_split_folders(tmp_path):
    nested = write_class_folders(tmp_path, ["x", "y"], [4, 6], zip=True, wrapper="my upload", name="nested")
    data_ = load_dataset("folder", path=nested, image_size=16, split="train")
    assert data_.classes == ["x", "y"] and len(data_) == 8  # 80% of 10 pictures; the wrapper is not a class
    split = write_class_folders(tmp_path, ["x", "y"], 5, splits=["train", "test"], n_val=2, name="split")
    train = load_dataset("folder", path=split, image_size=16, split="train")
    val = load_dataset("folder", path=split, image_size=16, split="val")
    test = load_dataset("folder", path=split, image_size=16, split="test")
    # test/ is the test set, never the validation set: validation is carved from train/ (20% of 5 per class)
    assert train.class_counts() == {"x": 4, "y": 4} and val.class_counts() == {"x": 1, "y": 1}
    assert test.class_counts() == {"x": 2, "y": 2}


# -- decoding ----------------------------------------------------------------------------------------------------

def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def test_every_image_mode_becomes_rgb():
    rgb = Image.new("RGB", (20, 14), (200, 30, 30))
    sixteen = Image.fromarray(np.full((14, 20), 40000, dtype=np.uint16))
    files = [
        _encode(rgb.convert("P"), "PNG"),
        _encode(Image.new("RGBA", (20, 14), (200, 30, 30, 128)), "PNG"),
        _encode(rgb.convert("L"), "PNG"),
        _encode(rgb.convert("CMYK"), "JPEG"),
        _encode(rgb.convert("L"), "JPEG"),
        _encode(sixteen, "PNG"),
        _encode(rgb, "GIF"),
        _encode(rgb, "BMP"),
        _encode(rgb, "WEBP"),
    ]
    out, ok = images.decode_many(files, 12)
    assert ok.all() and out.shape == (len(files), 3, 12, 12) and out.dtype == torch.uint8
    assert out[0, 0].float().mean() > 150 and out[0, 2].float().mean() < 80  # palette kept its red
    assert abs(out[3, 0].float().mean() - 200) < 25  # CMYK JPEG converted, not inverted


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_is_applied(fmt):
    """A 40x20 picture, red on the left, stored with orientation 6 (rotate 90 clockwise to view)."""
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    raw = _encode(Image.fromarray(arr), fmt, exif=exif.tobytes())
    out, ok = images.decode_many([raw], 20)
    assert ok.all()
    top, bottom = out[0, :, :5].float().mean((1, 2)), out[0, :, -5:].float().mean((1, 2))
    assert top[0] > 200 and bottom[2] > 200  # viewed upright, red is on top


def test_resize_keeps_aspect_by_centre_crop():
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, 20:40] = 255  # a white centre third
    out, ok = images.decode_many([_encode(Image.fromarray(wide), "PNG")], 10)
    assert ok.all() and out[0].float().mean() > 220  # the centre square is all that is left


# -- CIFAR files -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tar", [False, True])
def test_cifar100_coarse_labels_come_from_the_files(tmp_path, tar):
    root = write_cifar100_pickles(tmp_path / "root", per_class=2, test_per_class=1, tar=tar)
    fine = load_dataset("cifar100", root=root, split="train")
    coarse = load_dataset("cifar100", root=root, split="train", labels="coarse")
    assert len(fine.classes) == 100 and fine.classes[7] == "fine_07"
    assert len(coarse.classes) == 20 and coarse.classes == coarse.coarse_classes and coarse.classes[3] == "coarse_03"
    expected = torch.tensor([coarse_of(int(k)) for k in fine.labels])
    assert torch.equal(coarse.labels, expected) and torch.equal(fine.coarse_labels, expected)
    test = load_dataset("cifar100", root=root, split="val", labels="coarse")
    assert len(test) == 100 and set(test.class_counts().values()) == {5}
    with pytest.raises(DatasetError, match="no 'coarse' labels"):
        load_dataset("cifar10", root=write_cifar10_pickles(tmp_path / "c10"), labels="coarse")


def test_cifar_folder_layout_has_no_coarse_labels(tmp_path):
    root = tmp_path / "root"
    write_class_folders(root, ["apple", "bee"], 3, 32, zip=True, splits=["train", "test"], wrapper="cifar100", name="cifar100")
    assert load_dataset("cifar100", root=root).classes == ["apple", "bee"]
    with pytest.raises(DatasetError, match="no superclass labels"):
        load_dataset("cifar100", root=root, labels="coarse")


def test_cifar10_pickles_and_tar(tmp_path):
    a = load_dataset("cifar10", root=write_cifar10_pickles(tmp_path / "a"), split="train")
    b = load_dataset("cifar10", root=write_cifar10_pickles(tmp_path / "b", tar=True), split="train")
    val = load_dataset("cifar10", root=tmp_path / "a", split="val")
    # about 10% of each class of the 150 training images is carved for validation; the test batch stays the test set
    assert len(a) + len(val) == 150 and 10 <= len(val) <= 20 and a.classes[-1] == "truck" and torch.equal(a.images, b.images)
    assert load_dataset("cifar10", root=tmp_path / "a", split="test").class_counts()["cat"] == 2


def test_hostile_pickle_is_refused(tmp_path):
    root = write_cifar10_pickles(tmp_path / "root")

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    (root / "cifar-10-batches-py" / "batches.meta").write_bytes(pickle.dumps({"label_names": Evil()}))
    with pytest.raises(DatasetError, match="not a CIFAR pickle"):
        load_dataset("cifar10", root=root)
    assert not (tmp_path / "pwned").exists()


def test_missing_datasets_say_what_to_place_where(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("hymenoptera", root=empty)
    message = str(info.value)
    assert "hymenoptera_data.zip" in message and str(empty) in message and "\n" not in message
    with pytest.raises(DatasetUnavailable, match="cifar-10-python.tar.gz .*cifar10.zip"):
        load_dataset("cifar10", root=empty)


def test_closed_network_download_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_OFFLINE", "1")
    with pytest.raises(OSError, match="switched off"):
        download.fetch(sources.HYMENOPTERA_URL, tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()


# -- splits, subsets, caches -------------------------------------------------------------------------------------

def test_stratified_split_is_seeded_and_disjoint():
    labels = torch.arange(3).repeat_interleave(torch.tensor([10, 20, 7]))
    train, val = data.stratified_split(labels, seed=3)
    assert len(set(train.tolist()) & set(val.tolist())) == 0 and len(train) + len(val) == len(labels)
    assert torch.bincount(labels[val]).tolist() == [2, 4, 1]
    again, _ = data.stratified_split(labels, seed=3)
    other, _ = data.stratified_split(labels, seed=4)
    assert torch.equal(train, again) and not torch.equal(train, other)
    with pytest.raises(DatasetError, match="at least 2 per class"):
        data.stratified_split(torch.tensor([0, 0, 1]))


def test_random_split_on_request_and_subset(tmp_path):
    root = write_hymenoptera(tmp_path / "root", n=10)
    official = TrainConfig(dataset="hymenoptera", data_root=str(root.parent))
    train, val = load_splits(official, image_size=16)
    assert train.class_counts() == {"ants": 10, "bees": 10} and val.class_counts() == {"ants": 5, "bees": 5}
    random = official.replace(val_split="random", seed=2)
    train, val = load_splits(random, image_size=16)
    assert train.class_counts() == {"ants": 8, "bees": 8} and val.class_counts() == {"ants": 2, "bees": 2}
    sub, _ = load_splits(official.replace(subset=3, seed=5), image_size=16)
    sub2, _ = load_splits(official.replace(subset=3, seed=5), image_size=16)
    sub3, _ = load_splits(official.replace(subset=3, seed=6), image_size=16)
    assert sub.class_counts() == {"ants": 3, "bees": 3}
    assert torch.equal(sub.images, sub2.images) and not torch.equal(sub.images, sub3.images)


def test_decoded_cache_on_disk_is_reused_and_survives_corruption(tmp_path):
    root = write_cifar100_pickles(tmp_path / "root", n_fine=10, n_coarse=5)
    first = load_dataset("cifar100", root=root, image_size=20)
    files = list((cache.paths.cache_dir() / "datasets").glob("*.pt"))
    assert len(files) == 1
    cache.clear_memory()
    second = load_dataset("cifar100", root=root, image_size=20)
    assert torch.equal(first.images, second.images)
    files[0].write_bytes(b"corrupt")
    cache.clear_memory()
    third = load_dataset("cifar100", root=root, image_size=20)
    assert torch.equal(first.images, third.images)


def test_changed_file_is_decoded_again(tmp_path):
    path = write_class_folders(tmp_path, ["a", "b"], 3, zip=True)
    first = load_dataset("folder", path=path, image_size=16, split="train", val_split="official")
    write_class_folders(tmp_path, ["a", "b", "c"], 3, zip=True)
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse-grained file systems
    assert load_dataset("folder", path=path, image_size=16).classes == ["a", "b", "c"]
    assert first.classes == ["a", "b"]


# -- shapes ------------------------------------------------------------------------------------------------------

def test_shapes_are_deterministic_and_balanced():
    a, la = data.generate_shapes(3, size=32, seed=7)
    b, lb = data.generate_shapes(3, size=32, seed=7)
    c, _ = data.generate_shapes(3, size=32, seed=8)
    assert torch.equal(a, b) and torch.equal(la, lb) and not torch.equal(a, c)
    assert len(data.SHAPE_CLASSES) >= 10 and torch.bincount(la).tolist() == [3] * len(data.SHAPE_CLASSES)
    big, _ = data.generate_shapes(3, size=64, seed=7)
    small = torch.nn.functional.avg_pool2d(big.float(), 2)
    assert (small - a.float()).abs().mean() < 25  # the same pictures at both sizes (up to pixel noise)
    train = load_dataset("shapes", image_size=32)
    assert set(train.class_counts().values()) == {300} and train.source == "generated"
    assert set(load_dataset("shapes", split="val", image_size=32).class_counts().values()) == {100}


# -- augmentation ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("preset", list(AUG_PRESETS))
def test_augmentation_keeps_shape_and_varies_per_sample(preset):
    base, _ = data.generate_shapes(1, size=32, seed=0)
    batch = base[:1].repeat(16, 1, 1, 1)
    out = augment_batch(batch, preset, generator=torch.Generator().manual_seed(0))
    assert out.shape == batch.shape and out.dtype == torch.uint8 and out.device == batch.device
    again = augment_batch(batch, preset, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    distinct = len({bytes(x.numpy().tobytes()) for x in out})
    assert distinct == 1 if preset == "none" else distinct > 8


def test_cifar_preset_is_an_exact_shift_or_flip():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.int64).remainder(251).to(torch.uint8).view(2, 3, 32, 32)
    out = augment_batch(x, "cifar", generator=torch.Generator().manual_seed(1))
    centre = out[:, :, 8:24, 8:24]  # at most 4 px of shift: the centre always comes from the picture
    for i in range(2):
        found = any(torch.equal(centre[i], cand[:, 8 + dy:24 + dy, 8 + dx:24 + dx])
                    for cand in (x[i], x[i].flip(-1)) for dy in range(-4, 5) for dx in range(-4, 5))
        assert found


def test_translate_preset_shifts_at_most_2_px_with_a_reflected_border():
    x = torch.arange(8 * 3 * 32 * 32, dtype=torch.int64).remainder(251).to(torch.uint8).view(8, 3, 32, 32)
    out = augment_batch(x, "translate", generator=torch.Generator().manual_seed(3))
    reflected = torch.nn.functional.pad(x.float(), (2, 2, 2, 2), mode="reflect").to(torch.uint8)
    for i in range(len(x)):
        crops = [cand[:, dy:dy + 32, dx:dx + 32] for cand in (reflected[i], reflected[i].flip(-1))
                 for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], crop) for crop in crops)  # a whole crop: no zero border anywhere
    assert not all(torch.equal(out[i], x[i]) for i in range(len(x)))


@pytest.mark.parametrize("preset", [p for p in AUG_PRESETS if p != "none"])
def test_a_given_flip_decides_which_pictures_are_mirrored(preset):
    x = torch.zeros(6, 3, 64, 64, dtype=torch.uint8)
    x[..., 32:] = 255  # dark left half, bright right half: a mirror image is bright on the left
    flip = torch.tensor([True, False, True, True, False, False])
    out = augment_batch(x, preset, generator=torch.Generator().manual_seed(0), flip=flip).float()
    brighter_left = out[..., :, :16].mean((1, 2, 3)) > out[..., :, -16:].mean((1, 2, 3))
    assert torch.equal(brighter_left, flip)


def test_alternate_flip_mirrors_each_picture_every_other_epoch(monkeypatch):
    from cnnviz.training.features import ImageBatches

    seen = []
    real = data.augment_batch
    monkeypatch.setattr(data, "augment_batch", lambda *a, **k: seen.append(k["flip"]) or real(*a, **k))
    images = torch.zeros(8, 3, 16, 16, dtype=torch.uint8)
    source = ImageBatches(images, torch.zeros(8, dtype=torch.long), device=torch.device("cpu"), mean=(0, 0, 0),
                          std=(1, 1, 1), image_size=16, augment="translate", alternate_flip=True,
                          generator=torch.Generator().manual_seed(0))
    index = torch.arange(8)
    for epoch in (1, 2, 3):
        source.epoch = epoch
        source.get(index, train=True)
    assert torch.equal(seen[1], ~seen[0]) and torch.equal(seen[2], seen[0])
    assert 0 < int(seen[0].sum()) < 8  # random in the first epoch
    source.get(index[[5, 2]], train=True)
    assert torch.equal(seen[3], seen[0][[5, 2]])  # each picture keeps its own turn, whatever the batch
    plain = ImageBatches(images, torch.zeros(8, dtype=torch.long), device=torch.device("cpu"), mean=(0, 0, 0),
                         std=(1, 1, 1), image_size=16, augment="translate")
    plain.get(index, train=True)
    assert seen[4] is None  # random flips, drawn in augment_batch


def test_alexnet_pca_noise_shifts_colour_per_picture():
    x = torch.rand(6, 3, 16, 16)
    shifted = data.augment.pca_colour_noise(x, generator=torch.Generator().manual_seed(0))
    delta = (shifted - x).mean((2, 3))
    assert torch.allclose(shifted - x, delta[:, :, None, None], atol=1e-5)  # one colour shift per picture
    assert delta.abs().max() > 0 and not torch.allclose(delta[0], delta[1])


def test_normalize_and_resize():
    x = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    y = normalize(x, data.IMAGENET_MEAN, data.IMAGENET_STD)
    assert y.dtype == torch.float32
    assert torch.allclose(y[0, :, 0, 0], (1 - torch.tensor(data.IMAGENET_MEAN)) / torch.tensor(data.IMAGENET_STD))
    assert data.resize_batch(x, 8).shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment_batch(x, "mixup")


def test_val_subset_progress_and_test_split(tmp_path):
    root = write_hymenoptera(tmp_path / "root", n=10)
    calls = []
    config = TrainConfig(dataset="hymenoptera", data_root=str(root.parent), subset=4, val_subset=2)
    train, val = load_splits(config, image_size=16, progress=lambda done, total: calls.append((done, total)))
    assert train.class_counts() == {"ants": 4, "bees": 4} and val.class_counts() == {"ants": 2, "bees": 2}
    assert calls and calls[-1][0] == calls[-1][1]
    test = load_dataset("hymenoptera", root=root.parent, split="test", image_size=16, val_split="random")
    assert test.class_counts() == {"ants": 5, "bees": 5}  # the untouched official held-out set


def test_oversized_picture_is_skipped_not_read(tmp_path, monkeypatch):
    path = write_zip(tmp_path / "big.zip", {**_good_files(3), "a/huge.png": image_bytes(0, 300, fmt="PNG")})
    monkeypatch.setattr(archive, "MAX_FILE_BYTES", 5000)
    loaded = load_dataset("folder", path=path, image_size=16, split="train")
    held_out = load_dataset("folder", path=path, image_size=16, split="val")
    assert loaded.skipped + held_out.skipped == 1


def test_class_with_one_picture_cannot_be_split(tmp_path):
    path = write_class_folders(tmp_path, ["many", "lonely"], [5, 1], zip=True)
    with pytest.raises(DatasetError, match="class 'lonely' has only 1 picture"):
        load_dataset("folder", path=path, image_size=16)


# -- uploads are named by the user's file name ------------------------------------------------------------------

def _uploaded(tmp_path: Path, files: dict[str, bytes], name: str) -> Path:
    """A zip saved the way the Train page saves an upload."""
    from cnnviz.ui.logic import save_upload

    return save_upload(write_zip(tmp_path / "made.zip", files).read_bytes(), folder=tmp_path / "uploads", filename=name)


def test_messages_about_an_uploaded_zip_name_the_users_file(tmp_path):
    path = _uploaded(tmp_path, {"loose.jpg": image_bytes(0), "other.jpg": image_bytes(1)}, "holiday photos.zip")
    with pytest.raises(DatasetError, match="^holiday photos.zip has no class folders") as caught:
        load_dataset("folder", path=path)
    assert path.parent.name not in str(caught.value), "no internal hash in the message"
    broken = _uploaded(tmp_path, {**_good_files(2), "c/1.jpg": b"junk", "c/2.jpg": b"junk"}, "pets.zip")
    with pytest.raises(DatasetError, match=r"^pets.zip \(train\): none of the \d+ pictures of class 'c' could be read"):
        load_dataset("folder", path=broken, split="train", val_split="official", image_size=16)


# -- HEIC/HEIF photos --------------------------------------------------------------------------------------------

def _heic_bytes(colour=(200, 30, 30), size=(40, 30)) -> bytes:
    """A real HEIC file, encoded by pillow-heif."""
    pillow_heif = pytest.importorskip("pillow_heif")
    buf = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", size, colour)).save(buf, format="HEIF", quality=95)
    return buf.getvalue()


def test_heic_photo_loads_as_rgb():
    data = _heic_bytes()
    assert images.is_heif(data) and not images.is_heif(image_bytes(0))
    image = images.load_image(data, name="IMG_0001.HEIC")
    assert image.mode == "RGB" and image.size == (40, 30)
    r, g, b = image.getpixel((20, 15))
    assert r > 150 and g < 80 and b < 80, "the colour survives the lossy encoding"
    assert {"heic", "heif"} <= set(images.EXTENSIONS) and "HEIF" in images.FORMATS


def test_heic_without_pillow_heif_says_what_to_install(monkeypatch):
    data = _heic_bytes()
    monkeypatch.setattr(images, "HEIF_AVAILABLE", False)
    monkeypatch.setattr(images, "FORMATS", tuple(f for f in images.FORMATS if f != "HEIF"))
    with pytest.raises(images.ImageLoadError, match="IMG_0001.HEIC: a HEIC/HEIF photo.*pip install pillow-heif"):
        images.load_image(data, name="IMG_0001.HEIC")
    with pytest.raises(images.ImageLoadError, match="not a readable image: .*HEIC/HEIF picture, whatever its name says"):
        images.load_image(b"plain text", name="notes.txt")


def test_heic_pictures_in_a_zip_of_class_folders(tmp_path):
    files = {f"red/{i}.heic": _heic_bytes((220, 20, 20)) for i in range(3)}
    files.update({f"blue/{i}.HEIC": _heic_bytes((20, 20, 220)) for i in range(3)})
    data = load_dataset("folder", path=write_zip(tmp_path / "phone.zip", files), split="train", val_split="official",
                        image_size=16)
    assert data.classes == ["blue", "red"] and set(data.labels.tolist()) == {0, 1}, "both classes' HEIC pictures decoded"
    red = data.images[data.labels == 1].float().mean(dim=(0, 2, 3))
    assert red[0] > 150 and red[2] < 80
