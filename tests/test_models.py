"""Reference models: Fashion-MNIST loader, network shapes, committed ONNX files and their accuracy."""
from __future__ import annotations

import gzip
import re

import numpy as np
import onnx
import pytest

from edgeq.errors import EdgeqError
from edgeq.models import fmnist
from edgeq.models.registry import MODELS_DIR, NAMES, REFERENCE_MODELS, model_info, model_path

needs_data = pytest.mark.skipif(
    not fmnist.available(),
    reason=f"Fashion-MNIST IDX files are absent from {fmnist.data_dir()} "
           "(install Debian's dataset-fashion-mnist or run `make setup`)")


@pytest.fixture(scope="module")
def test_set():
    if not fmnist.available():
        pytest.skip(f"Fashion-MNIST IDX files are absent from {fmnist.data_dir()}")
    return fmnist.load_fmnist("test")


def _session(path):
    import onnxruntime as ort
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run(sess, x: np.ndarray) -> np.ndarray:
    # The files are exported with a fixed batch of 1, as an MCU runs them.
    return np.concatenate([sess.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])


# ----------------------------------------------------------------------------- loader
@needs_data
def test_loader_shapes_dtypes_and_labels(test_set):
    images, labels = test_set
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.int64
    assert labels.min() == 0 and labels.max() == 9
    assert np.array_equal(np.bincount(labels), np.full(10, 1000))   # the test set is balanced
    assert images.max() == 255 and images.min() == 0


@needs_data
def test_train_split_size():
    images, labels = fmnist.load_fmnist("train")
    assert images.shape == (60000, 28, 28) and labels.shape == (60000,)


def test_preprocess_is_pixel_over_255():
    img = np.array([[0, 51, 255] + [0] * 25] * 28, dtype=np.uint8)
    x = fmnist.preprocess(img)
    assert x.shape == (1, 1, 28, 28) and x.dtype == np.float32
    assert x[0, 0, 0, :3].tolist() == pytest.approx([0.0, 0.2, 1.0])
    assert fmnist.preprocess(np.zeros((5, 28, 28), np.uint8)).shape == (5, 1, 28, 28)


def test_missing_files_name_the_debian_package(tmp_path):
    with pytest.raises(EdgeqError) as exc:
        fmnist.load_fmnist("test", root=tmp_path)
    assert "dataset-fashion-mnist" in exc.value.fix and "make setup" in exc.value.fix
    assert not fmnist.available(tmp_path)


def test_unknown_split_is_a_user_error():
    with pytest.raises(EdgeqError):
        fmnist.load_fmnist("validation")


def test_reads_idx_written_elsewhere(tmp_path, monkeypatch):
    """A hand-written 2-image IDX pair in EDGEQ_FMNIST_DIR loads with the right values."""
    imgs = np.arange(2 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(2, 28, 28)
    labs = np.array([3, 9], np.uint8)
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + imgs.tobytes())
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (2).to_bytes(4, "big") + labs.tobytes())
    monkeypatch.setenv("EDGEQ_FMNIST_DIR", str(tmp_path))
    x, y = fmnist.load_fmnist("test")
    assert np.array_equal(x, imgs) and y.tolist() == [3, 9] and y.dtype == np.int64


# ----------------------------------------------------------------------------- networks
@pytest.mark.parametrize("name", NAMES)
def test_nets_are_mcu_sized(name):
    torch = pytest.importorskip("torch")
    from edgeq.models import nets
    net = nets.build(name).eval()
    with torch.no_grad():
        assert tuple(net(torch.zeros(2, 1, 28, 28)).shape) == (2, 10)
    assert nets.count_params(net) < 100_000
    assert nets.count_macs(net) < 5_000_000


# ----------------------------------------------------------------------------- committed ONNX files
def test_registry_paths():
    assert set(REFERENCE_MODELS) == {"dscnn", "mobilenetv2", "resnet8"}
    with pytest.raises(EdgeqError):
        model_path("lenet")


@pytest.mark.parametrize("name", NAMES)
def test_onnx_file_is_small_float_and_keeps_batchnorm(name):
    path = model_path(name)
    assert path.stat().st_size < 500_000
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    assert 8 <= m.ir_version <= 10
    assert m.opset_import[0].version == 13
    ops = {n.op_type for n in m.graph.node}
    assert "BatchNormalization" in ops and "Conv" in ops      # edgeq folds BN itself
    assert "Softmax" not in ops                               # outputs are logits
    assert [i.name for i in m.graph.input] == ["input"] and [o.name for o in m.graph.output] == ["logits"]
    dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 1, 28, 28]
    if name in ("mobilenetv2", "resnet8"):
        assert "Add" in ops                                   # residual connections


@pytest.mark.parametrize("name", NAMES)
def test_onnx_runs_in_onnxruntime(name):
    sess = _session(model_path(name))
    out = _run(sess, np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32))
    assert out.shape == (2, 10) and np.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_onnx_matches_nets_definition(name):
    """nets.py rebuilt with the file's weights gives onnxruntime's logits (file and code agree)."""
    torch = pytest.importorskip("torch")
    from edgeq.models import nets
    net = nets.from_onnx(name)
    x = np.random.default_rng(1).random((4, 1, 28, 28), dtype=np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    got = _run(_session(model_path(name)), x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    info = model_info(name)
    assert nets.count_params(net) == info["params"] and nets.count_macs(net) == info["macs"]


@pytest.mark.parametrize("name", NAMES)
def test_readme_table_matches_training_record(name):
    info = model_info(name)
    readme = (MODELS_DIR / "README.md").read_text()
    row = next((line for line in readme.splitlines() if line.startswith(f"| {name} ")), None)
    assert row is not None, f"models/README.md has no table row for {name}"
    assert f"{info['float_test_accuracy'] * 100:.2f}%" in row
    assert f"{info['params']:,}" in row and f"{info['macs']:,}" in row


@pytest.mark.parametrize("name", NAMES)
def test_accuracy_on_first_500_test_images(name, test_set):
    """The committed file scores what the README says (10k float accuracy) within 2 points."""
    images, labels = test_set
    n = 500
    logits = _run(_session(model_path(name)), fmnist.preprocess(images[:n]))
    acc = float(np.mean(logits.argmax(1) == labels[:n]))
    info = model_info(name)
    # Same file, same images: onnxruntime reproduces the torch subset score (argmax ties aside).
    assert abs(acc - info["float_test_accuracy_first500"]) <= 0.004
    assert abs(acc - info["float_test_accuracy"]) <= 0.02, (acc, info["float_test_accuracy"])


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_accuracy_on_full_test_set(name, test_set):
    images, labels = test_set
    logits = _run(_session(model_path(name)), fmnist.preprocess(images))
    acc = float(np.mean(logits.argmax(1) == labels))
    assert abs(acc - model_info(name)["float_test_accuracy"]) <= 0.002


# ----------------------------------------------------------------------------- training script
@pytest.mark.slow        # ~15 s: loads 60k images and scores the 10k test set
@needs_data
def test_train_script_smoke(tmp_path):
    """One epoch on 256 images: writes a checked ONNX file, the results record and README rows."""
    pytest.importorskip("torch")
    import json
    from edgeq.models import train
    (tmp_path / "README.md").write_text("x\n<!-- table -->\n| h |\n|---|\n| stale |\n<!-- /table -->\ny\n")
    assert train.main(["--model", "resnet8", "--epochs", "1", "--limit", "256", "--out", str(tmp_path)]) == 0
    m = onnx.load(str(tmp_path / "fmnist_resnet8.onnx"))
    assert 8 <= m.ir_version <= 10 and any(n.op_type == "BatchNormalization" for n in m.graph.node)
    info = json.loads((tmp_path / "fmnist_results.json").read_text())["resnet8"]
    assert info["train_images"] == 256 and info["epochs"] == 1
    lines = (tmp_path / "README.md").read_text().splitlines()
    assert lines[4].startswith("| resnet8 | 77,754 |") and lines[5] == "<!-- /table -->" and "stale" not in lines
