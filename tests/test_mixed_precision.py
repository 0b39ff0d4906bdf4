"""edgeq/mixed_precision: the ILP against brute force, ties, locks, infeasible and degenerate
budgets, speed at 100 layers, Hutchinson's trace on a known Hessian, and the CLI end to end."""
from __future__ import annotations

import itertools
import shutil
import json
import time

import numpy as np
import pytest
import torch

from edgeq.errors import EdgeqError
from edgeq.mixed_precision.hessian import hutchinson_trace
from edgeq.mixed_precision.ilp import Budget, Once, assign_bitwidth_ilp
from edgeq.options import parse_budget


needs_arm = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="arm-none-eabi-gcc / qemu-system-arm missing (make setup)")

def _instance(n, seed):
    rng = np.random.default_rng(seed)
    names = [f"l{i}" for i in range(n)]
    size = {k: {8: float(s), 4: float(s) / 2} for k, s in zip(names, rng.integers(10, 1000, n))}
    sens = {k: {8: float(a), 4: float(a + b)} for k, a, b in zip(names, rng.random(n) * 0.01, rng.random(n))}
    lat = {k: {8: float(c), 4: float(c * rng.uniform(0.7, 1.3))} for k, c in zip(names, rng.integers(100, 1000, n))}
    return names, size, sens, lat


def _brute(names, sens, budgets, ties=(), locks=None):
    best, best_plan = np.inf, None
    for combo in itertools.product((4, 8), repeat=len(names)):
        plan = dict(zip(names, combo))
        if any(len({plan[t] for t in tie}) > 1 for tie in ties):
            continue
        if any(plan[k] != v for k, v in (locks or {}).items()):
            continue
        once = lambda b: sum(o.cost for o in b.once if o.triggered(plan))  # noqa: E731
        if any(b.offset + once(b) + sum(b.cost[k][plan[k]] for k in names) > b.limit + 1e-9 for b in budgets):
            continue
        s = sum(sens[k][plan[k]] for k in names)
        if s < best:
            best, best_plan = s, plan
    return best, best_plan


@pytest.mark.parametrize("seed", range(6))
def test_ilp_matches_brute_force(seed):
    names, size, sens, lat = _instance(8, seed)
    total8 = sum(v[8] for v in size.values())
    rng = np.random.default_rng(100 + seed)
    budgets = [Budget("weight bytes", size, rng.uniform(0.55, 0.95) * total8)]
    if seed % 2:  # also a latency budget with an offset (the unweighted layers)
        budgets.append(Budget("instructions", lat, 500 + sum(v[8] for v in lat.values()), offset=500))
    ties = [["l0", "l3"], ["l5", "l6", "l7"]] if seed >= 3 else []
    best, _ = _brute(names, sens, budgets, ties)
    plan = assign_bitwidth_ilp(names, sens, budgets, ties)
    assert sum(sens[k][plan[k]] for k in names) == pytest.approx(best, rel=1e-9)
    for b in budgets:
        assert b.offset + sum(b.cost[k][plan[k]] for k in names) <= b.limit + 1e-6
    for tie in ties:
        assert len({plan[t] for t in tie}) == 1


def test_ties_and_locks_respected():
    names, size, sens, _ = _instance(6, 7)
    total8 = sum(v[8] for v in size.values())
    sens["l0"] = {8: 0.0, 4: 0.0}     # l0 alone would go to int4 for free ...
    sens["l1"] = {8: 0.0, 4: 1e3}     # ... but it is tied to l1, which must not
    plan = assign_bitwidth_ilp(names, sens, [Budget("weight bytes", size, 0.9 * total8)],
                               ties=[["l0", "l1"]], locks={"l2": 8})
    assert plan["l0"] == plan["l1"] == 8 and plan["l2"] == 8
    with pytest.raises(EdgeqError, match="locked to different bits"):
        assign_bitwidth_ilp(names, sens, [], ties=[["l0", "l1"]], locks={"l0": 4, "l1": 8})
    with pytest.raises(EdgeqError, match="unknown layers"):
        assign_bitwidth_ilp(names, sens, [], ties=[["l0", "nope"]])


@pytest.mark.parametrize("seed", range(4))
def test_once_paid_costs(seed):
    """Costs paid once if any of their layers uses 4 bits (the int4 kernels' code, one per
    kernel): the ILP matches brute force, and where lowering cannot pay for the code it
    says so."""
    names, size, sens, _ = _instance(8, seed)
    total8 = sum(v[8] for v in size.values())
    rng = np.random.default_rng(seed)
    onces = [Once(float(rng.integers(50, 400)), 4, frozenset(names[:5])),
             Once(float(rng.integers(20, 100)), 4, frozenset(names[5:]))]
    budget = Budget("flash bytes", size, 0.75 * total8, once=onces)
    best, _ = _brute(names, sens, [budget])
    plan = assign_bitwidth_ilp(names, sens, [budget])
    assert sum(sens[k][plan[k]] for k in names) == pytest.approx(best, rel=1e-9)
    paid = sum(o.cost for o in onces if any(plan[n] == 4 for n in o.layers))
    assert sum(size[k][plan[k]] for k in names) + paid <= budget.limit + 1e-6
    # all-int8 is over the budget by less than any int4 code costs: no plan below it exists
    tight = Budget("flash bytes", size, total8 - 1, once=[Once(total8, 4)])
    with pytest.raises(EdgeqError, match=f"smallest achievable: {total8:,.0f}"):
        assign_bitwidth_ilp(names, sens, [tight])


def test_infeasible_names_smallest_size():
    names, size, sens, _ = _instance(5, 3)
    all4 = sum(v[4] for v in size.values())
    with pytest.raises(EdgeqError) as e:
        assign_bitwidth_ilp(names, sens, [Budget("weight bytes", size, all4 - 1)])
    assert f"smallest achievable: {all4:,.0f}" in str(e.value)
    # a lock raises the floor: the message names the floor with the lock
    floor = all4 + size["l1"][8] - size["l1"][4]
    with pytest.raises(EdgeqError, match=f"smallest achievable: {floor:,.0f}"):
        assign_bitwidth_ilp(names, sens, [Budget("weight bytes", size, all4)], locks={"l1": 8})


def test_degenerate_budgets():
    names, size, sens, _ = _instance(5, 4)
    all8 = sum(v[8] for v in size.values())
    all4 = sum(v[4] for v in size.values())
    flat = {k: {8: 1.0, 4: 1.0} for k in names}  # even with no reason to prefer 8 bits
    assert set(assign_bitwidth_ilp(names, flat, [Budget("weight bytes", size, all8)]).values()) == {8}
    assert set(assign_bitwidth_ilp(names, sens, [Budget("weight bytes", size, 10 * all8)]).values()) == {8}
    assert set(assign_bitwidth_ilp(names, sens, [Budget("weight bytes", size, all4)]).values()) == {4}


def test_ilp_100_layers_under_a_second():
    names, size, sens, lat = _instance(100, 11)
    total8 = sum(v[8] for v in size.values())
    t = time.perf_counter()
    plan = assign_bitwidth_ilp(names, sens, [Budget("weight bytes", size, 0.6 * total8),
                                             Budget("instructions", lat, 1.05 * sum(v[8] for v in lat.values()))],
                               ties=[names[i:i + 2] for i in range(0, 20, 2)])
    elapsed = time.perf_counter() - t
    print(f"ILP 100 layers: {elapsed:.3f} s")
    # about 0.25 s on an idle core; the bound is generous because the test machine is shared
    assert len(plan) == 100 and elapsed < 2.0


def test_hutchinson_trace_of_a_known_quadratic():
    """loss = 0.5 w^T A w + 0.5 u^T B u: block traces are Tr(A) and Tr(B)."""
    torch.manual_seed(0)
    M = torch.randn(6, 6, dtype=torch.float64)
    A = M @ M.T + torch.eye(6, dtype=torch.float64)
    B = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    w = torch.randn(6, dtype=torch.float64, requires_grad=True)
    u = torch.randn(3, dtype=torch.float64, requires_grad=True)
    loss = lambda: 0.5 * w @ A @ w + 0.5 * u @ B @ u + (w.sum() * u.sum()) ** 2 * 0  # cross term zero
    est = hutchinson_trace(loss, [w, u], iters=4000, seed=1)
    assert est[0] == pytest.approx(float(torch.trace(A)), rel=0.05)
    assert est[1] == pytest.approx(6.0, abs=1e-9)  # diagonal Hessian: every probe is exact


def test_parse_budget():
    assert parse_budget("200KB", 0, "x") == 200_000
    assert parse_budget("196KiB", 0, "x") == 196 * 1024
    assert parse_budget("200000", 0, "x") == 200_000
    assert parse_budget("60%", 1000, "x") == pytest.approx(600)
    assert parse_budget("1.5M", 0, "x") == 1_500_000
    with pytest.raises(EdgeqError, match="cannot read --flash-budget"):
        parse_budget("lots", 0, "--flash-budget")


@pytest.fixture(scope="module")
def calib_file(tmp_path_factory):
    from edgeq.models.fmnist import available, load_fmnist, preprocess
    if not available():
        pytest.skip("Fashion-MNIST not installed")
    x, _ = load_fmnist("train")
    path = tmp_path_factory.mktemp("mp") / "calib.npy"
    np.save(path, preprocess(x[:64]))
    return path


@pytest.mark.parametrize("target", ["reference", "host"])
def test_cli_auto_flash_budget(calib_file, tmp_path, target):
    from typer.testing import CliRunner
    from edgeq.cli import app
    from edgeq.models.registry import model_path
    out = tmp_path / "b"
    r = CliRunner().invoke(app, ["compile", str(model_path("dscnn")), "--target", target, "--calib",
                                 str(calib_file), "--weight-bits", "auto", "--flash-budget", "60%",
                                 "-o", str(out), "-q"])
    assert r.exit_code == 0, (r.output, r.exception)
    rep = json.loads((out / "report.json").read_text())
    mp = rep["mixed_precision"]
    assert mp["weight_bytes"] <= mp["flash_budget_weight_bytes"] == int(0.6 * mp["all_int8_weight_bytes"])
    bits = rep["options"]["weight_bits_per_layer"]
    assert set(bits.values()) == {4, 8}
    assert {k: v["bits"] for k, v in mp["layers"].items()} == bits  # the quantizer got the plan
    assert all("sensitivity" in v for v in mp["layers"].values())
    assert (out / mp["pareto_plot"]).is_file() and len(mp["pareto"]) >= 2
    # `edgeq inspect` shows each layer's bits beside the sensitivities the ILP weighed
    shown = CliRunner().invoke(app, ["inspect", str(out)]).output
    first = next(iter(mp["layers"]))
    row = next(line for line in shown.splitlines() if first in line)
    s = mp["layers"][first]
    assert f"{s['sensitivity_int8']:.3g} / {s['sensitivity_int4']:.3g} (locked)" in row
    assert "sensitivity 8b / 4b" in shown and "sensitivity: measured" in shown
    # an infeasible budget is one EdgeqError naming the smallest size
    r = CliRunner().invoke(app, ["compile", str(model_path("dscnn")), "--target", target, "--calib",
                                 str(calib_file), "--weight-bits", "auto", "--flash-budget", "1KB",
                                 "-o", str(tmp_path / "x"), "-q"])
    assert isinstance(r.exception, EdgeqError) and "smallest achievable" in str(r.exception)


def test_cli_budget_needs_auto(tmp_path):
    from typer.testing import CliRunner
    from edgeq.cli import app
    from edgeq.models.registry import model_path
    r = CliRunner().invoke(app, ["compile", str(model_path("dscnn")), "--flash-budget", "60%", "-o", str(tmp_path / "x")])
    assert isinstance(r.exception, EdgeqError) and "--weight-bits auto" in str(r.exception)


@pytest.mark.slow
@pytest.mark.qemu
def test_latency_budget_met_on_qemu(calib_file, tmp_path):
    """dscnn on cortex-m7: 70% weight bytes and 1.4% more instructions than all-int8 (every
    int4 kernel is slower on M7; the HAWQ plan alone needs ~1.7% more, so the budget binds);
    the planned firmware meets it on the emulated board and its flash is below all-int8's."""
    from edgeq.models.registry import model_path
    from edgeq.targets import get_target
    from edgeq.driver.pipeline import CompileOptions, compile_model
    calib = np.load(calib_file)
    res8 = compile_model(model_path("dscnn"), CompileOptions(target="cortex-m7", progress=False),
                         tmp_path / "b8", calib, log=lambda m: None)
    i8 = get_target("cortex-m7").profile(tmp_path / "b8", "qemu")["instructions"]
    budget = int(i8 * 1.014)
    res = compile_model(model_path("dscnn"), CompileOptions(
        target="cortex-m7", progress=False, weight_bits="auto", flash_budget="70%",
        latency_budget=str(budget)), tmp_path / "bm", calib, log=lambda m: None)
    mp = res.report["mixed_precision"]
    measured = get_target("cortex-m7").profile(tmp_path / "bm", "qemu")["instructions"]
    print(f"all-int8 {i8:,}, budget {budget:,}, predicted {mp['instructions_predicted']:,}, QEMU {measured:,}")
    assert mp["instructions_predicted"] <= budget and measured <= budget
    assert mp["weight_bytes"] <= mp["flash_budget_weight_bytes"]
    assert res.report["firmware_flash_bytes"] < res8.report["firmware_flash_bytes"]


@pytest.mark.qemu
@needs_arm
def test_firmware_budget_holds_on_the_linked_elf(calib_file, tmp_path):
    """--firmware-budget prices the whole ELF, int4 kernels' code included: the linked
    firmware is within the budget and within the reserved link slack of the prediction; a
    budget just below all-int8 makes it lower enough weights to pay for that code too; an
    unreachable one is refused with the smallest achievable size."""
    from typer.testing import CliRunner
    from edgeq.cli import app
    from edgeq.mixed_precision.cost_model import LINK_SLACK
    from edgeq.models.registry import model_path
    out = tmp_path / "fw"
    r = CliRunner().invoke(app, ["compile", str(model_path("dscnn")), "--target", "cortex-m7", "--calib",
                                 str(calib_file), "--weight-bits", "auto", "--firmware-budget", "85%",
                                 "-o", str(out), "-q"])
    assert r.exit_code == 0, (r.output, r.exception)
    rep = json.loads((out / "report.json").read_text())
    mp = rep["mixed_precision"]
    assert mp["firmware_budget_bytes"] == int(0.85 * mp["all_int8_firmware_bytes"])
    assert rep["flash_bytes"] <= mp["firmware_bytes_predicted"] <= mp["firmware_budget_bytes"]
    assert mp["firmware_bytes_predicted"] - rep["flash_bytes"] <= 2 * LINK_SLACK
    assert 4 in rep["options"]["weight_bits_per_layer"].values()
    assert "firmware" in r.output and "predicted" in r.output
    # 1 KB below all-int8: the plan must save the 1 KB *and* pay for the int4 kernels' code
    # it links in (4.5 KB for the conv kernel on M7), which a weight-bytes budget ignores
    tight = mp["all_int8_firmware_bytes"] - 1000
    r = CliRunner().invoke(app, ["compile", str(model_path("dscnn")), "--target", "cortex-m7", "--calib",
                                 str(calib_file), "--weight-bits", "auto", "--firmware-budget", str(tight),
                                 "-o", str(tmp_path / "t"), "-q"])
    assert r.exit_code == 0, (r.output, r.exception)
    rep_t = json.loads((tmp_path / "t" / "report.json").read_text())
    saved = rep_t["mixed_precision"]["all_int8_weight_bytes"] - rep_t["mixed_precision"]["weight_bytes"]
    assert rep_t["flash_bytes"] <= tight and saved >= 1000 + 4000
    # below anything reachable: one clear error with the smallest achievable size, no folder
    r = CliRunner().invoke(app, ["compile", str(model_path("dscnn")), "--target", "cortex-m7", "--calib",
                                 str(calib_file), "--weight-bits", "auto", "--firmware-budget", "20KB",
                                 "-o", str(tmp_path / "x"), "-q"])
    assert isinstance(r.exception, EdgeqError) and "firmware flash bytes" in str(r.exception)
    assert "smallest achievable" in str(r.exception) and not (tmp_path / "x").exists()
    # a target without a linked firmware cannot price it
    r = CliRunner().invoke(app, ["compile", str(model_path("dscnn")), "--target", "host", "--calib",
                                 str(calib_file), "--weight-bits", "auto", "--firmware-budget", "90%",
                                 "-o", str(tmp_path / "y"), "-q"])
    assert isinstance(r.exception, EdgeqError) and "cortex-m" in str(r.exception)


@pytest.mark.qemu
@needs_arm
def test_firmware_budget_fits_a_part_all_int8_overflows(calib_file, tmp_path, monkeypatch):
    """The user story: all-int8 does not fit the part's flash, --firmware-budget makes it
    fit. The all-int8 and all-int4 firmwares the budget is priced from are linked against
    the emulated board's larger flash, so pricing does not fail on the very overflow the
    budget is there to remove."""
    from edgeq.models.registry import model_path
    from edgeq.targets import get_target
    from edgeq.driver.pipeline import CompileOptions, compile_model
    calib = np.load(calib_file)
    monkeypatch.setitem(get_target("cortex-m7").board, "flash_bytes", 52_000)  # all-int8 needs 58,588
    with pytest.raises(EdgeqError, match="FLASH|flash"):
        compile_model(model_path("dscnn"), CompileOptions(target="cortex-m7", progress=False, test_vectors=0),
                      tmp_path / "b8", calib, log=lambda m: None)
    res = compile_model(model_path("dscnn"), CompileOptions(
        target="cortex-m7", progress=False, weight_bits="auto", firmware_budget="50KB"),
        tmp_path / "bm", calib, log=lambda m: None)
    assert res.report["flash_bytes"] <= 50_000 < res.report["mixed_precision"]["all_int8_firmware_bytes"]
    assert res.report["self_check"]["passed"]
