"""`--cpu host` / `--cpu adb[:SERIAL]`: the arm64 build's CPU read from /proc/cpuinfo of the
machine that will run it (targets/cpu_detect.py), end to end with the stand-in adb."""
from __future__ import annotations

import json
import platform

import pytest

from edgeq.errors import EdgeqError
from edgeq.targets.cpu_detect import choose_cpu, parse_cpuinfo
from tests.test_arm64 import _phone_env, edgeq_cli, small  # noqa: F401  (small: a fixture)


def cpuinfo(*cores: tuple[str, str], implementer: str = "0x41") -> str:
    """/proc/cpuinfo text as arm64 Linux and Android print it: (part, features) per core."""
    return "".join(f"processor\t: {i}\nBogoMIPS\t: 38.40\nFeatures\t: fp asimd {feat}\n"
                   f"CPU implementer\t: {implementer}\nCPU architecture: 8\nCPU variant\t: 0x0\n"
                   f"CPU part\t: {part}\nCPU revision\t: 1\n\n" for i, (part, feat) in enumerate(cores))


def test_parse_reads_every_core():
    cores = parse_cpuinfo(cpuinfo(("0xd05", "asimddp"), ("0xd44", "asimddp atomics")))
    assert sorted(cores) == [0, 1]
    assert cores[1]["cpu part"] == "0xd44" and cores[1]["features"] == "fp asimd asimddp atomics"


@pytest.mark.parametrize("cores, fastest, name, why", [
    # a phone: little A55s, the X1 prime core is the fastest and decides
    ([("0xd05", "asimddp")] * 4 + [("0xd44", "asimddp")], [4], "cortex-x1", "CPU part 0xd44"),
    ([("0xd03", "")] * 4, [0, 1, 2, 3], "cortex-a53", "CPU part 0xd03"),
    ([("0xd4e", "asimddp i8mm")], [0], "cortex-x3", "CPU part 0xd4e"),
    # a core edgeq does not name: its features choose the schedules
    ([("0xd4d", "asimddp i8mm bf16")], [0], "max", "not one edgeq names; features dotprod+i8mm"),
    ([("0xd0d", "asimddp")], [0], "cortex-a76", "features dotprod"),
    # a named part whose features disagree (a kernel that uses a missing one dies with SIGILL)
    ([("0xd4e", "asimddp")], [0], "cortex-a76", "features dotprod"),
    ([("0xd0b", "")], [0], "cortex-a53", "features NEON only"),
])
def test_choose_by_fastest_core_part_and_features(cores, fastest, name, why):
    cpu, how = choose_cpu(parse_cpuinfo(cpuinfo(*cores)), fastest, "adb")
    assert cpu.name == name and why in how and how.startswith("adb, core")


def test_other_implementers_go_by_features():
    cpu, how = choose_cpu(parse_cpuinfo(cpuinfo(("0xd44", "asimddp"), implementer="0x51")), [0], "adb")
    assert cpu.name == "cortex-a76" and "features dotprod" in how and "CPU part" not in how


def test_no_processors_is_an_error():
    with pytest.raises(EdgeqError, match="lists no processors"):
        choose_cpu({}, [], "adb")


def test_compile_for_the_phone_over_adb(small, tmp_path):
    """--cpu adb reads the stand-in phone's cpuinfo (A55 x4, A78 x3, X1): its fastest core,
    the X1, decides; the build names how it chose, and runs bit-exact."""
    path, root = small["convbn"]
    env, out = _phone_env(tmp_path), tmp_path / "out"
    res = edgeq_cli("compile", path, "--target", "arm64", "--cpu", "adb", "--lowering", "c", "--calib",
                    root / "convbn_calib.npy", "-o", out, env=env)
    assert res.returncode == 0, res.stderr
    arm64 = json.loads((out / "report.json").read_text())["arm64"]
    assert arm64["cpu"] == "cortex-x1"
    assert arm64["cpu_detected"] == "adb, core 7: cortex-x1 (CPU part 0xd44)"
    assert "detected on adb, core 7: cortex-x1" in res.stdout
    log = (tmp_path / "adb.log").read_text().splitlines()
    assert "shell 'cat /proc/cpuinfo'" in log and not any(l.startswith(("push", "pull")) for l in log)
    run = edgeq_cli("run", out, "-i", root / "convbn_x.npy", "--check", env=env)
    assert run.returncode == 0, run.stderr


def test_compile_for_an_i8mm_phone(small, tmp_path):
    """A phone whose prime core has i8mm but a part edgeq does not name builds for `max`
    (qemu -cpu max runs its self-check)."""
    path, root = small["convbn"]
    info = tmp_path / "cpuinfo"
    info.write_text(cpuinfo(*[("0xd46", "asimddp i8mm")] * 7, ("0xd4d", "asimddp i8mm")))
    env, out = {**_phone_env(tmp_path), "FAKE_ADB_CPUINFO": str(info)}, tmp_path / "out"
    res = edgeq_cli("compile", path, "--target", "arm64", "--cpu", "adb:emulator-5554", "--lowering", "c",
                    "--calib", root / "convbn_calib.npy", "-o", out, env=env)
    assert res.returncode == 0, res.stderr
    arm64 = json.loads((out / "report.json").read_text())["arm64"]
    assert arm64["cpu"] == "max" and arm64["cpu_detected"].startswith("adb:emulator-5554, core 7: max")


def test_no_phone_is_one_line_and_writes_nothing(small, tmp_path):
    path, root = small["convbn"]
    res = edgeq_cli("compile", path, "--target", "arm64", "--cpu", "adb:XYZ123", "-o", tmp_path / "out",
                    env=_phone_env(tmp_path))
    assert res.returncode == 1 and "serial XYZ123" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.skipif(platform.machine() in ("aarch64", "arm64"), reason="this machine is aarch64")
def test_cpu_host_on_x86_is_one_line(small, tmp_path):
    path, _ = small["convbn"]
    res = edgeq_cli("compile", path, "--target", "arm64", "--cpu", "host", "-o", tmp_path / "out")
    assert res.returncode == 1 and "not aarch64" in res.stderr and "--cpu adb" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
