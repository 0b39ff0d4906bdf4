"""On-device training through the command line: `edgeq compile --train SPEC` builds the C
training step, `edgeq train DIR --data train.npz` runs it on the target's runner and writes
the learned weights back; every learned byte equals edgeq.training's reference driven with
the same samples in the same order (np.array_equal), and `edgeq run` answers with them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeq.cli import main
from edgeq.graphio.onnx_io import load_graph
from edgeq.training import TrainState, build_plan, train_step

from ._onnx_builders import export_legacy
from .test_cli_errors import assert_clean_failure, edgeq


@pytest.fixture(scope="module")
def dscnn(tmp_path_factory):
    """conv 3x3 s2, depthwise 3x3, pointwise, global pool, FC (the FMNIST nets' path, small)."""
    import torch
    from torch import nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 1, 1, groups=8), nn.ReLU(),
                        nn.Conv2d(8, 16, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    root = tmp_path_factory.mktemp("train")
    model = export_legacy(net, (1, 1, 12, 12), root / "dscnn.onnx")
    rng = np.random.default_rng(0)
    np.save(root / "calib.npy", rng.uniform(0, 1, (32, 1, 12, 12)).astype(np.float32))
    np.savez(root / "train.npz", x=rng.uniform(0, 1, (10, 1, 12, 12)).astype(np.float32), y=rng.integers(0, 10, 10))
    return root, model


def compile_train(root: Path, model: Path, target: str, spec: str, name: str, *extra) -> Path:
    out = root / name
    main(["compile", str(model), "--target", target, "--calib", str(root / "calib.npy"), "--train", spec,
          "-o", str(out), "-q", *map(str, extra)])
    return out


def reference_after(build: Path, before, data: Path, epochs: int, lr: float | None = None):
    """edgeq.training's state after the same steps, from the graph the compile deployed."""
    import json
    from edgeq.driver.runner import load_training_data
    from edgeq.targets.training import options_of, updates_from_json
    section = json.loads((build / "report.json").read_text())["training"]
    plan = build_plan(before, updates_from_json(section["updates"]), options_of(section, lr))
    x, y = load_training_data(data, before, 10)
    state = TrainState(plan)
    for _ in range(epochs):
        for i in range(len(x)):
            train_step(plan, state, x[i:i + 1], int(y[i]))
    return plan, state


def assert_learned_equal(build: Path, plan, state) -> None:
    after = load_graph(build / "model.q.onnx")
    moved = 0
    for name, u in plan.updates.items():
        node = after.node_by_name(name)
        if u.weights:
            assert np.array_equal(after.const(node.inputs[1]), state.weights[name]), name
            moved += not np.array_equal(state.weights[name], plan.graph.const(node.inputs[1]))
        if u.bias:
            assert np.array_equal(after.const(node.inputs[2]), state.biases[name]), name
            moved += not np.array_equal(state.biases[name], plan.graph.const(node.inputs[2]))
    assert moved, "no parameter moved: the comparison would prove nothing"
    from edgeq.codegen.train import VELOCITY, state_layout
    with np.load(build / "train_state.npz") as z:
        saved = dict(z)
    for i, a in enumerate(state_layout(plan)):
        if a.kind == "draws":
            assert int(saved[f"{i}_draws"][0]) == state.draws.counter
        elif a.kind == "residuals":
            assert np.array_equal(saved[f"{i}_residuals"], state.residuals[a.layer]), a.layer
        elif a.kind in VELOCITY:
            assert np.array_equal(saved[f"{i}_{a.kind}"], state.velocity[(a.layer, VELOCITY[a.kind])]), a.layer


def test_bias_training_on_the_host_is_bit_exact_end_to_end(dscnn):
    root, model = dscnn
    build = compile_train(root, model, "host", "bias", "host_bias")
    import json
    report = json.loads((build / "report.json").read_text())
    t = report["training"]
    assert t["self_check"]["passed"] and t["self_check"]["steps"] == 4
    assert len(t["updates"]) == 4 and all(u["bias"] and not u["weights"] for u in t["updates"])
    assert (build / "src" / "train_state.c").is_file() and (build / "model_train").is_file()
    before = load_graph(build / "model.q.onnx")
    main(["train", str(build), "--data", str(root / "train.npz"), "--epochs", "2", "-q"])
    plan, state = reference_after(build, before, root / "train.npz", 2)
    assert_learned_equal(build, plan, state)
    t = json.loads((build / "report.json").read_text())["training"]
    assert t["trained"]["steps"] == 20
    # `edgeq run` answers with the learned weights, bit-exact with the reference on them
    np.save(root / "probe.npy", np.load(root / "calib.npy")[:6])
    res = edgeq("run", build, "-i", root / "probe.npy", "--check", "--raw", "-o", root / "after.npy")
    assert res.returncode == 0, res.stderr
    from edgeq.reference.interpreter import quantize_inputs, run_reference
    feeds = quantize_inputs(before, {before.inputs[0]: np.load(root / "probe.npy")})
    old = run_reference(before, feeds)[before.outputs[0]]
    assert not np.array_equal(np.load(root / "after.npy"), old)


def test_a_second_train_continues_from_the_learned_state(dscnn):
    root, model = dscnn
    build = compile_train(root, model, "host", "last:2", "host_last2")
    before = load_graph(build / "model.q.onnx")
    main(["train", str(build), "--data", str(root / "train.npz"), "-q", "--lr", "0.05"])
    main(["train", str(build), "--data", str(root / "train.npz"), "-q", "--lr", "0.05"])
    plan, state = reference_after(build, before, root / "train.npz", 2, lr=0.05)
    assert_learned_equal(build, plan, state)


def test_training_errors_are_one_clear_line(dscnn, tmp_path):
    root, model = dscnn
    calib = root / "calib.npy"
    res = edgeq("compile", model, "--target", "host", "--calib", calib, "--train", "last:2", "--train-budget", "2000",
                "-o", tmp_path / "tiny")
    assert_clean_failure(res, "training budget is 2,000", "--train-budget")
    assert not (tmp_path / "tiny").exists()
    res = edgeq("compile", model, "--target", "reference", "--calib", calib, "--train", "bias", "-o", tmp_path / "ref")
    assert_clean_failure(res, "--train", "--target host")
    res = edgeq("compile", model, "--target", "host", "--train", "last:x", "-o", tmp_path / "bad")
    assert_clean_failure(res, "unknown --train")
    build = root / "host_bias" if (root / "host_bias").exists() else compile_train(root, model, "host", "bias", "host_bias")
    for name, arrays, needle in [
        ("noy.npz", {"x": np.zeros((3, 1, 12, 12), np.float32)}, "not the arrays x and y"),
        ("range.npz", {"x": np.zeros((3, 1, 12, 12), np.float32), "y": np.array([0, 10, 2])}, "10 classes"),
        ("shape.npz", {"x": np.zeros((3, 1, 9, 9), np.float32), "y": np.array([0, 1, 2])}, "shape"),
        ("count.npz", {"x": np.zeros((3, 1, 12, 12), np.float32), "y": np.array([0, 1])}, "3 inputs x but 2 labels"),
        ("float.npz", {"x": np.zeros((3, 1, 12, 12), np.float32), "y": np.array([0.0, 1.0, 2.0])}, "dtype float64")]:
        np.savez(tmp_path / name, **arrays)
        assert_clean_failure(edgeq("train", build, "--data", tmp_path / name), needle)
    (tmp_path / "junk.npz").write_text("not numpy")
    assert_clean_failure(edgeq("train", build, "--data", tmp_path / "junk.npz"), "cannot read")
    assert_clean_failure(edgeq("train", build, "--data", tmp_path / "missing.npz"), "does not exist")
    res = edgeq("compile", model, "--target", "host", "--calib", calib, "--train", "bias", "--weight-bits", "4",
                "-o", tmp_path / "int4")
    assert_clean_failure(res, "packed as int4", "--weight-bits 8")
    plain = tmp_path / "plain"
    main(["compile", str(model), "--target", "host", "--calib", str(calib), "-o", str(plain), "-q"])
    assert_clean_failure(edgeq("train", plain, "--data", root / "train.npz"), "not a training build", "--train bias")


def test_an_op_without_a_backward_rule_is_named(tmp_path):
    """A Sigmoid (QLut) between the layers: training the first layer must name that node."""
    import torch
    from torch import nn
    net = nn.Sequential(nn.Conv2d(1, 4, 3, 1, 1), nn.Sigmoid(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    model = export_legacy(net, (1, 1, 6, 6), tmp_path / "sig.onnx")
    np.save(tmp_path / "calib.npy", np.random.default_rng(0).uniform(0, 1, (8, 1, 6, 6)).astype(np.float32))
    res = edgeq("compile", model, "--target", "host", "--calib", tmp_path / "calib.npy", "--train", "bias",
                "-o", tmp_path / "out")
    assert_clean_failure(res, "no integer backward rule for op QLut", "Sigmoid", "last:N")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not __import__("shutil").which("qemu-system-arm"), reason="needs qemu-system-arm")
def test_last2_training_on_cortex_m7_in_chunks_is_bit_exact(dscnn, monkeypatch):
    """QEMU trains in chunks (each firmware starts from the state the previous one printed):
    3 chunks of 4, 4 and 2 samples must give the reference's bytes after 10 steps."""
    import json
    from edgeq.targets import mcu
    root, model = dscnn
    build = compile_train(root, model, "cortex-m7", "last:2", "m7_last2")
    t = json.loads((build / "report.json").read_text())["training"]
    assert t["self_check"]["passed"] and t["instructions_per_step"] > 0 and t["stack_bytes"] > 0
    assert t["sram_bytes"] <= t["budget_bytes"] and (build / "fw_train.elf").is_file()
    before = load_graph(build / "model.q.onnx")
    monkeypatch.setattr(mcu, "TRAIN_CHUNK_BYTES", 4 * 144)
    main(["train", str(build), "--data", str(root / "train.npz"), "-q"])
    plan, state = reference_after(build, before, root / "train.npz", 1)
    assert_learned_equal(build, plan, state)
    res = edgeq("flash", build)
    assert res.returncode == 0, res.stderr  # the rebuilt firmware's self-check with the learned weights


@pytest.mark.parametrize("target", ["host", "cortex-m7"])
def test_a_residual_block_trains_bit_exact(tmp_path, target):
    """QAdd's backward and the sum of the two gradients of the tensor the block reads twice."""
    if target != "host" and not __import__("shutil").which("qemu-system-arm"):
        pytest.skip("needs qemu-system-arm")
    import json
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU())
            self.body = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), nn.ReLU(), nn.Conv2d(8, 8, 1))
            self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

        def forward(self, x):
            s = self.stem(x)
            return self.head(s + self.body(s))
    torch.manual_seed(1)
    model = export_legacy(Block(), (1, 1, 10, 10), tmp_path / "res.onnx")
    rng = np.random.default_rng(1)
    np.save(tmp_path / "calib.npy", rng.uniform(0, 1, (32, 1, 10, 10)).astype(np.float32))
    np.savez(tmp_path / "train.npz", x=rng.uniform(0, 1, (8, 1, 10, 10)).astype(np.float32), y=rng.integers(0, 10, 8))
    build = compile_train(tmp_path, model, target, "bias", "res_bias")
    t = json.loads((build / "report.json").read_text())["training"]
    assert "QAdd" in [n.op for n in load_graph(build / "model.q.onnx").nodes]
    assert "eq_train_grad_sum" in (build / "src" / "model.c").read_text() and t["self_check"]["passed"]
    before = load_graph(build / "model.q.onnx")
    main(["train", str(build), "--data", str(tmp_path / "train.npz"), "-q"])
    plan, state = reference_after(build, before, tmp_path / "train.npz", 1)
    assert_learned_equal(build, plan, state)


def test_auto_chooses_updates_that_fit_the_budget(dscnn, tmp_path):
    import json
    root, model = dscnn
    build = compile_train(root, model, "host", "auto", "host_auto", "--train-budget", "40000")
    t = json.loads((build / "report.json").read_text())["training"]
    assert t["spec"] == "auto" and t["auto"]["chosen"] and t["self_check"]["passed"]
    assert t["sram_bytes"] <= 40000 and t["budget_bytes"] == 40000
    res = edgeq("compile", model, "--target", "host", "--train", "auto", "-o", tmp_path / "nocalib")
    assert_clean_failure(res, "--train auto", "--calib")
    res = edgeq("compile", model, "--target", "host", "--calib", root / "calib.npy", "--train", "auto",
                "--train-budget", "500", "-o", tmp_path / "small")
    assert_clean_failure(res, "budget", "--train-budget")


class Routes:
    """QMaxPool, QConcat (behind its requants), QPad and a tensor read by three nodes (two convs
    and the residual add) on the gradient path of `--train bias`."""

    @staticmethod
    def build():
        import torch
        import torch.nn.functional as F
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.c0, self.c1, self.c2 = nn.Conv2d(1, 8, 3, 1, 1), nn.Conv2d(8, 8, 3, 1, 1), nn.Conv2d(8, 8, 1)
                self.c3, self.c4, self.fc = nn.Conv2d(16, 8, 1), nn.Conv2d(8, 8, 3), nn.Linear(8, 10)

            def forward(self, x):
                s = F.relu(self.c0(x))
                c = torch.cat([F.relu(self.c1(s)), F.relu(self.c2(s))], 1)
                e = F.relu(F.relu(self.c3(c)) + s)
                h = F.relu(self.c4(F.pad(F.max_pool2d(e, 2), (1, 1, 1, 1))))
                return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))
        return Net()

    hw, ops, kernels = 8, {"QMaxPool", "QConcat", "QPad"}, ("eq_train_maxpool_input_grad", "eq_train_gather_grad")


class Excite:
    """QTranspose and a broadcast QAdd input (squeeze-excitation shapes: [1, C, 1, 1] + [1, C, H, W])."""

    @staticmethod
    def build():
        import torch
        import torch.nn.functional as F
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.c0, self.se, self.c1 = nn.Conv2d(1, 8, 3, 1, 1), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 3, 1, 1)
                self.fc = nn.Linear(8, 10)

            def forward(self, x):
                s = F.relu(self.c0(x)).permute(0, 1, 3, 2)
                u = F.relu(s + self.se(F.adaptive_avg_pool2d(s, 1)))
                return self.fc(torch.flatten(F.adaptive_avg_pool2d(F.relu(self.c1(u)), 1), 1))
        return Net()

    hw, ops, kernels = 6, {"QTranspose", "QAdd"}, ("eq_train_gather_grad", "eq_train_unbroadcast")


class Twice:
    """One node reading a tensor on both inputs (s + s, concat(t, t)): two gradients at one step."""

    @staticmethod
    def build():
        import torch
        import torch.nn.functional as F
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.c0, self.c1, self.fc = nn.Conv2d(1, 8, 3, 1, 1), nn.Conv2d(8, 8, 3, 1, 1), nn.Linear(16, 10)

            def forward(self, x):
                s = F.relu(self.c0(x))
                t = F.relu(self.c1(s + s))
                return self.fc(torch.flatten(F.adaptive_avg_pool2d(torch.cat([t, t], 1), 1), 1))
        return Net()

    hw, ops, kernels = 6, {"QAdd", "QConcat"}, ("eq_train_gather_grad", "eq_train_grad_sum")


class Flattened:
    """A tensor read by a flatten (QReshape, which then copies its gradient instead of passing
    its buffer on) and by a conv: the two heads' gradients add up."""

    @staticmethod
    def build():
        import torch
        import torch.nn.functional as F
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.c0, self.c1 = nn.Conv2d(1, 4, 3, 1, 1), nn.Conv2d(4, 4, 1)
                self.fa, self.fb = nn.Linear(64, 10), nn.Linear(64, 10)

            def forward(self, x):
                s = F.relu(self.c0(x))
                return self.fa(torch.flatten(s, 1)) + self.fb(torch.flatten(F.relu(self.c1(s)), 1))
        return Net()

    hw, ops, kernels = 4, {"QReshape", "QAdd"}, ("eq_train_gather_grad", "eq_train_grad_sum")


def _routing_net(tmp_path, net):
    import torch
    torch.manual_seed(3)
    model = export_legacy(net.build(), (1, 1, net.hw, net.hw), tmp_path / "net.onnx")
    rng = np.random.default_rng(3)
    np.save(tmp_path / "calib.npy", rng.uniform(0, 1, (32, 1, net.hw, net.hw)).astype(np.float32))
    np.savez(tmp_path / "train.npz", x=rng.uniform(0, 1, (6, 1, net.hw, net.hw)).astype(np.float32),
             y=rng.integers(0, 10, 6))
    return model


@pytest.mark.parametrize("target", ["host", "cortex-m7"])
@pytest.mark.parametrize("net", [Routes, Excite, Twice, Flattened], ids=[
    "maxpool_concat_pad_3readers", "transpose_broadcast_add", "one_node_reads_twice", "reshape_and_conv_read"])
def test_routing_ops_train_bit_exact(tmp_path, target, net):
    """`--train bias` reaches the first conv through each op: the compile's 4-step self-check and
    `edgeq train` after it equal the reference byte for byte (host process, QEMU)."""
    if target != "host" and not __import__("shutil").which("qemu-system-arm"):
        pytest.skip("needs qemu-system-arm")
    import json
    model = _routing_net(tmp_path, net)
    build = compile_train(tmp_path, model, target, "bias", "out")
    t = json.loads((build / "report.json").read_text())["training"]
    before = load_graph(build / "model.q.onnx")
    backward_ops = {before.node_by_name(n).op for n in t["backward"]}
    assert net.ops <= backward_ops and t["self_check"]["passed"]
    source = (build / "src" / "model.c").read_text()
    assert all(k in source for k in net.kernels)
    if net is Routes:  # the stem's output has three readers: two running sums
        assert source.count("eq_train_grad_sum(") == 2
    main(["train", str(build), "--data", str(tmp_path / "train.npz"), "-q"])
    plan, state = reference_after(build, before, tmp_path / "train.npz", 1)
    assert_learned_equal(build, plan, state)
    first = before.nodes[0]
    assert not np.array_equal(state.biases[first.name], before.const(first.inputs[2])), "the stem's bias moved"


@pytest.mark.parametrize("target", ["host", "cortex-m7"])
def test_momentum_trains_bit_exact_and_continues(dscnn, target):
    """--train-momentum: the velocities are state (SRAM, report.json), and a second `edgeq train`
    continues from the first's velocities."""
    if target != "host" and not __import__("shutil").which("qemu-system-arm"):
        pytest.skip("needs qemu-system-arm")
    import json
    root, model = dscnn
    build = compile_train(root, model, target, "last:2", f"{target}_momentum", "--train-momentum", "0.9")
    t = json.loads((build / "report.json").read_text())["training"]
    assert t["options"]["momentum"] == 0.9 and t["self_check"]["passed"]
    kinds = [a["kind"] for a in t["state"]]
    assert kinds.count("weight_velocity") == 2 and kinds.count("bias_velocity") == 2
    weights = sum(int(np.prod(a["shape"])) for a in t["state"] if a["kind"] == "weights")
    assert t["memory"]["momentum_bytes"] == 4 * weights + sum(4 * a["shape"][0] for a in t["state"]
                                                              if a["kind"] == "biases")
    before = load_graph(build / "model.q.onnx")
    for _ in range(2):
        main(["train", str(build), "--data", str(root / "train.npz"), "-q"])
    plan, state = reference_after(build, before, root / "train.npz", 2)
    assert plan.options.momentum == 0.9
    assert_learned_equal(build, plan, state)
    assert any(np.any(v) for v in state.velocity.values())


def test_momentum_outside_its_range_is_one_clear_line(dscnn, tmp_path):
    root, model = dscnn
    res = edgeq("compile", model, "--target", "host", "--calib", root / "calib.npy", "--train", "bias",
                "--train-momentum", "1.0", "-o", tmp_path / "out")
    assert_clean_failure(res, "--train-momentum 1.0", "0.9")


@pytest.mark.slow
def test_shufflenet_channel_shuffle_and_concat_train_end_to_end(tmp_path):
    """A real network that needs the new rules: torchvision's shufflenet_v2_x0_5 (64x64 input,
    random init) with `--train last:3` reaches the last block's branch conv through the channel
    shuffle (QReshape, QTranspose, QReshape) and QConcat. Compile (self-check), then `edgeq train`,
    bit-exact with the reference on the host."""
    import json
    from edgeq.errors import EdgeqError
    from edgeq.models import torchvision_zoo
    try:
        torchvision_zoo.load_torchvision()
    except EdgeqError as e:
        pytest.skip(str(e))
    size = 64
    model = torchvision_zoo.export(torchvision_zoo.build("shufflenet_v2_x0_5"), tmp_path / "shufflenet.onnx",
                                   "legacy", (1, 3, size, size))
    np.save(tmp_path / "calib.npy", torchvision_zoo.sample_inputs(16, size).astype(np.float32))
    np.savez(tmp_path / "train.npz", x=torchvision_zoo.sample_inputs(6, size, seed=1).astype(np.float32),
             y=np.array([1, 5, 9, 1, 5, 9]))
    build = compile_train(tmp_path, model, "host", "last:3", "out", "--train-budget", "16MiB")
    t = json.loads((build / "report.json").read_text())["training"]
    before = load_graph(build / "model.q.onnx")
    assert {"QTranspose", "QConcat"} <= {before.node_by_name(n).op for n in t["backward"]}
    assert t["self_check"]["passed"]
    main(["train", str(build), "--data", str(tmp_path / "train.npz"), "-q"])
    classes = 1000
    import edgeq.driver.runner as runner
    x, y = runner.load_training_data(tmp_path / "train.npz", before, classes)
    section = json.loads((build / "report.json").read_text())["training"]
    from edgeq.targets.training import options_of, updates_from_json
    plan = build_plan(before, updates_from_json(section["updates"]), options_of(section))
    state = TrainState(plan)
    for i in range(len(x)):
        train_step(plan, state, x[i:i + 1], int(y[i]))
    assert_learned_equal(build, plan, state)

