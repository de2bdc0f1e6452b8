"""Tests of the adb wrapper (seemore.profiling.adb) against the fake adb (tests/fake_adb/adb)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from seemore.profiling.adb import ADB_NOT_FOUND, Adb, AdbError, parse_devices
from seemore.profiling.formats import RunnerFailed, parse_benchmark_model, parse_executor_runner

HERE = Path(__file__).resolve().parent
FAKE_DIR = HERE / "fake_adb"
DATA = HERE / "data" / "adb"
PIXEL8 = "38021FDJH00A1K"
PIXEL9 = "4B141FDAQ005Z9"
REMOTE_DIR = "/data/local/tmp/seemore"
RUNNER = [f"{REMOTE_DIR}/executor_runner", "--model_path", f"{REMOTE_DIR}/seemore_t_x4_xnnpack_int8.pte",
          "--num_executions", "11", "--cpu_threads", "4"]


class FakeAdb:
    """The fake adb first on PATH, replaying one scenario; its call log is ``calls``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        self.monkeypatch = monkeypatch
        self.run_dir = tmp_path / "fake_adb_run"
        # `#!/usr/bin/env python3` then finds this interpreter directly, not a slow version-manager shim.
        python_dir = tmp_path / "python_bin"
        python_dir.mkdir()
        (python_dir / "python3").symlink_to(sys.executable)
        monkeypatch.setenv("PATH", os.pathsep.join([str(FAKE_DIR), str(python_dir), os.environ.get("PATH", "")]))
        monkeypatch.setenv("FAKE_ADB_RUN_DIR", str(self.run_dir))

    def use(self, scenario: str | Path) -> FakeAdb:
        self.monkeypatch.setenv("FAKE_ADB_SCENARIO", str(scenario if isinstance(scenario, Path) else DATA / scenario))
        return self

    def calls(self) -> list[dict]:
        log = self.run_dir / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def verbs(self) -> list[str]:
        return [c["verb"] for c in self.calls()]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeAdb:
    return FakeAdb(monkeypatch, tmp_path)


def one_line(exc: pytest.ExceptionInfo[BaseException], *fragments: str) -> str:
    message = str(exc.value)
    assert message and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def scenario_with_devices(tmp_path: Path, name: str, devices_text: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "devices.txt").write_text(devices_text)
    return folder


# --- devices and selection ---------------------------------------------------------------------


def test_the_fake_is_the_adb_found_on_path(fake):
    fake.use("pixel8_ok")
    assert Adb().binary == str(FAKE_DIR / "adb")


def test_one_device_is_selected(fake):
    fake.use("pixel8_ok")
    adb = Adb()
    [device] = adb.devices()
    assert (device.serial, device.state, device.model, device.details["device"]) == (PIXEL8, "device", "Pixel 8",
                                                                                     "shiba")
    assert adb.select() == PIXEL8
    assert adb.select() == PIXEL8
    assert fake.verbs() == ["devices", "devices"]  # devices() once, select() once, then cached


@pytest.mark.parametrize("scenario, model, device, soc", [
    ("pixel8_ok", "Pixel 8", "shiba", "Tensor G3"),
    ("pixel9_ok", "Pixel 9", "tokay", "Tensor G4"),
])
def test_getprop(fake, scenario, model, device, soc):
    fake.use(scenario)
    adb = Adb()
    assert adb.getprop("ro.product.model") == model
    assert adb.getprop("ro.product.device") == device
    assert adb.getprop("ro.soc.model") == soc
    assert adb.getprop("ro.unset.property") == ""
    with pytest.raises(ValueError):
        adb.getprop("ro.x; reboot")
    shells = [c for c in fake.calls() if c["verb"] == "shell"]
    assert [c["shell"] for c in shells[:3]] == ["getprop ro.product.model", "getprop ro.product.device",
                                                "getprop ro.soc.model"]
    assert all(c["argv"][:2] == ["-s", PIXEL8 if scenario == "pixel8_ok" else PIXEL9] for c in shells)


def test_two_devices_need_a_serial(fake):
    fake.use("two_devices")
    with pytest.raises(AdbError) as exc:
        Adb().select()
    one_line(exc, "several devices attached", PIXEL8, PIXEL9, "Pixel 8", "Pixel 9", "--serial")
    with pytest.raises(AdbError):
        Adb().getprop("ro.product.model")
    assert "shell" not in fake.verbs()  # nothing ran on either phone
    adb = Adb(serial=PIXEL9)
    assert adb.select() == PIXEL9
    assert adb.getprop("ro.product.model") == "Pixel 9"
    assert Adb(serial=PIXEL8).getprop("ro.product.model") == "Pixel 8"
    assert [c["serial"] for c in fake.calls() if c["verb"] == "shell"] == [PIXEL9, PIXEL8]


def test_given_serial_not_attached(fake):
    fake.use("pixel8_ok")
    with pytest.raises(AdbError) as exc:
        Adb(serial="ZY22XXXXXX").select()
    one_line(exc, "device ZY22XXXXXX is not attached", f"attached: {PIXEL8}")


def test_unauthorized_device(fake):
    fake.use("unauthorized")
    with pytest.raises(AdbError) as exc:
        Adb().getprop("ro.product.model")
    one_line(exc, f"device {PIXEL8} is unauthorized", "accept the USB debugging prompt on the phone")
    assert fake.verbs() == ["devices"]
    with pytest.raises(AdbError) as exc:
        Adb(serial=PIXEL8).select()
    one_line(exc, "unauthorized")


@pytest.mark.parametrize("devices_text, fragment", [
    ("List of devices attached\n\n", "no Android device attached"),
    (f"List of devices attached\n{PIXEL8}         offline transport_id:7\n\n", f"device {PIXEL8} is offline"),
    (f"List of devices attached\n{PIXEL8}         no permissions (user in plugdev group; are your udev rules "
     "wrong?); see [http://developer.android.com/tools/device.html] usb:3-2 transport_id:8\n\n",
     "in state 'no permissions'"),
    ("* daemon not running; starting now at tcp:5037\n* daemon started successfully\n"
     f"List of devices attached\n{PIXEL8}         recovery usb:3-2 transport_id:9\n\n", "in state 'recovery'"),
])
def test_devices_not_ready(fake, tmp_path, devices_text, fragment):
    fake.use(scenario_with_devices(tmp_path, "state", devices_text))
    with pytest.raises(AdbError) as exc:
        Adb().select()
    one_line(exc, fragment)


def test_adb_missing_from_path(monkeypatch, tmp_path):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    adb = Adb()
    assert adb.binary is None
    with pytest.raises(AdbError) as exc:
        adb.select()
    assert one_line(exc) == ADB_NOT_FOUND
    with pytest.raises(AdbError) as exc:
        Adb(binary=tmp_path / "platform-tools" / "adb").devices()
    one_line(exc, f"adb not found at {tmp_path / 'platform-tools' / 'adb'}", "--adb PATH")


def test_parse_devices_formats():
    text = ("* daemon not running; starting now at tcp:5037\n* daemon started successfully\n"
            "List of devices attached\n"
            f"{PIXEL8}\tdevice\n"  # plain `adb devices`: a tab, no details
            f"{PIXEL9}         device usb:3-1 product:tokay model:Pixel_9 device:tokay transport_id:3\n"
            "emulator-5554          offline transport_id:5\n\n")
    devices = parse_devices(text)
    assert [(d.serial, d.state) for d in devices] == [(PIXEL8, "device"), (PIXEL9, "device"),
                                                      ("emulator-5554", "offline")]
    assert devices[0].details == {} and devices[0].model is None
    assert devices[1].details["transport_id"] == "3" and devices[1].model == "Pixel 9"


# --- shell, push, pull -------------------------------------------------------------------------


def test_push_then_run_then_pull(fake, tmp_path):
    fake.use("pixel8_ok")
    model = tmp_path / "seemore_t_x4_xnnpack_int8.pte"
    model.write_bytes(b"PTE\x00" + bytes(range(256)))
    adb = Adb()
    adb.shell(["mkdir", "-p", REMOTE_DIR])
    adb.push(model, f"{REMOTE_DIR}/")
    result = adb.shell(RUNNER, timeout_s=60)
    assert result.returncode == 0 and result.command == tuple(RUNNER)
    assert "OutputX 0" in result.stdout and "Model loaded in" in result.stderr
    timing = parse_executor_runner(result.output, warmup=1)
    assert (timing.count, timing.load_ms) == (10, pytest.approx(155.861247))
    etdump = adb.pull(f"{REMOTE_DIR}/model.etdump", tmp_path)
    assert etdump == tmp_path / "model.etdump" and "placeholder" in etdump.read_text()
    back = adb.pull(f"{REMOTE_DIR}/{model.name}", tmp_path / "roundtrip.pte")
    assert back.read_bytes() == model.read_bytes()

    calls = fake.calls()
    verbs = [c["verb"] for c in calls]
    assert verbs == ["devices", "shell", "push", "shell", "pull", "pull"]
    push, runner = calls[2], calls[3]
    assert (push["local"], push["remote"]) == (str(model), f"{REMOTE_DIR}/")
    assert runner["shell"] == " ".join(RUNNER)
    assert verbs.index("push") < verbs.index("shell", 2)  # the artifact was on the phone before the runner ran
    assert all(c["argv"][:2] == ["-s", PIXEL8] for c in calls[1:])
    assert (fake.run_dir / "device" / REMOTE_DIR.lstrip("/") / model.name).read_bytes() == model.read_bytes()


def test_benchmark_model_and_power_over_adb(fake):
    fake.use("pixel8_ok")
    adb = Adb()
    bench = adb.shell([f"{REMOTE_DIR}/benchmark_model", f"--graph={REMOTE_DIR}/seemore_t_x4_int8.tflite",
                       "--num_threads=4", "--enable_op_profiling=true"])
    assert parse_benchmark_model(bench.output).delegated_nodes == 414
    dump = ["dumpsys", "android.hardware.power.stats.IPowerStats/default", "delta"]
    first, second = adb.shell(dump).stdout, adb.shell(dump).stdout
    assert "Elapsed time: 183422 ms" in first and "Elapsed time: 10012 ms" in second  # served in turn
    assert "Elapsed time: 10012 ms" in adb.shell(dump).stdout  # the last response repeats


def test_shell_quotes_each_word_for_the_phone_shell(fake):
    fake.use("pixel8_ok")
    result = Adb().shell(["ls", "/sdcard/My Models/x.pte", "a;b"], check=False)
    assert result.returncode == 127
    assert fake.calls()[-1]["shell"] == "ls '/sdcard/My Models/x.pte' 'a;b'"
    with pytest.raises(TypeError):
        Adb().shell("ls /sdcard")  # type: ignore[arg-type]


def test_unknown_remote_command_is_one_line_error(fake):
    fake.use("pixel8_ok")
    with pytest.raises(AdbError) as exc:
        Adb().shell(["simpleperf", "stat", "ls"])
    one_line(exc, "adb shell 'simpleperf stat ls' on 38021FDJH00A1K failed with exit status 127",
             "simpleperf: inaccessible or not found")


def test_runner_crash(fake):
    fake.use("runner_crash")
    adb = Adb()
    with pytest.raises(AdbError) as exc:
        adb.shell(RUNNER)
    message = one_line(exc, "executor_runner", "exit status 134 (SIGABRT)",
                       "assert failed (method.ok()): Loading of method forward failed with status 0x1")
    assert not message.endswith("Aborted")  # the shell's notice is not the interesting last line
    result = adb.shell(RUNNER, check=False)
    assert result.returncode == 134
    with pytest.raises(RunnerFailed):
        parse_executor_runner(result.output)


def test_runner_timeout(fake):
    fake.use("runner_timeout")
    started = time.monotonic()
    with pytest.raises(AdbError) as exc:
        Adb().shell(RUNNER, timeout_s=2)
    assert time.monotonic() - started < 20  # the fake sleeps 30 s: it was killed, not waited for
    one_line(exc, "executor_runner", "timed out after 2 s", "last output:", "Model loaded in 155.861247 ms.")


def test_push_and_pull_failures(fake, tmp_path):
    fake.use("pixel8_ok")
    adb = Adb()
    with pytest.raises(AdbError) as exc:
        adb.push(tmp_path / "missing.pte", f"{REMOTE_DIR}/")
    one_line(exc, "missing.pte does not exist")
    local = tmp_path / "m.pte"
    local.write_bytes(b"x")
    with pytest.raises(AdbError) as exc:
        adb.push(local, "/system/m.pte")
    one_line(exc, f"adb push {local} /system/m.pte", "exit status 1", "Read-only file system")
    with pytest.raises(AdbError) as exc:
        adb.pull(f"{REMOTE_DIR}/nothing.etdp", tmp_path)
    one_line(exc, "adb pull", "failed to stat remote object", "No such file or directory")
    assert [c["verb"] for c in fake.calls()] == ["devices", "push", "pull"]
