"""`twinarm doctor`: what it finds on this machine, and the fixes it names for what it cannot find."""

from __future__ import annotations

import json
import sys

import pytest

from twinarm.cli import doctor_cmd
from twinarm.cli.main import main


def test_this_machine_passes_and_says_why(capsys: pytest.CaptureFixture) -> None:
    assert main(["doctor", "--json", "--no-render"]) == 0
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    for name in ("python", "mujoco", "torch", "av", "feetech-servo-sdk", "dynamixel-sdk", "video h264"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["video h264"]["detail"] == "libx264: 4/4 frames back"
    assert checks["camera board"] == {"name": "camera board", "status": "ok", "fix": "",
                                      "detail": "ChArUco 7x5:35:26: 24 corners read back (fit-camera)"}  # fmt: skip
    assert checks["serial ports"]["status"] in ("ok", "warn")  # "warn" with no arm plugged in, as here


def test_rendering_names_the_backend_that_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUJOCO_GL", "nonexistent-backend")
    check = doctor_cmd.check_rendering()
    assert check.status == "fail" and check.detail.startswith("MUJOCO_GL=nonexistent-backend does not render")
    assert check.fix in ("export MUJOCO_GL=egl", "export MUJOCO_GL=osmesa")


def test_a_port_without_access_fails_with_the_dialout_fix(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(doctor_cmd, "serial_ports", lambda: ["/dev/ttyACM0", "/dev/ttyUSB1"])
    monkeypatch.setattr(doctor_cmd.os, "access", lambda path, mode: path != "/dev/ttyACM0")
    check = doctor_cmd.check_serial()
    assert (check.status, check.detail) == ("fail", "no read/write access to /dev/ttyACM0")
    assert "dialout" in check.fix
    assert main(["doctor", "--no-render"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  serial ports" in out and "to fix:" in out and "usermod -aG dialout" in out


def test_display_is_a_warning_naming_the_one_command_that_needs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor_cmd.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    check = doctor_cmd.check_display()
    assert check.status == "warn" and check.detail == (
        "no display to open a window on (DISPLAY is not set); only `teleop --view` needs one")
    assert "ssh -X" in check.fix
    monkeypatch.setenv("DISPLAY", ":1")
    assert (doctor_cmd.check_display().status, doctor_cmd.check_display().detail) == ("ok", "DISPLAY=:1")


def test_a_missing_package_names_its_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor_cmd, "PACKAGES", (("no_such_module_xyz", "no-such-package"),))
    check = doctor_cmd.check_packages()[-1]
    assert (check.status, check.fix) == ("fail", "pip install no-such-package")


def test_lerobot_plugin_is_checked_only_where_lerobot_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    real_version = doctor_cmd.metadata.version

    def version(name: str) -> str:
        if name == "lerobot":
            raise doctor_cmd.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(doctor_cmd.metadata, "version", version)
    assert doctor_cmd.check_lerobot_plugin().status == "ok"  # optional: nothing to check
    # A LeRobot the plugin cannot load with (here: distribution metadata without an importable package).
    monkeypatch.setattr(doctor_cmd.metadata, "version", lambda name: "9.9" if name == "lerobot" else real_version(name))
    monkeypatch.setitem(sys.modules, "lerobot", None)
    check = doctor_cmd.check_lerobot_plugin()
    assert check.status == "warn" and check.detail.startswith("lerobot 9.9: twinarm.lerobot_env does not load")
    assert "lerobot==0.6.1" in check.fix


def test_board_detection_names_the_opencv_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    monkeypatch.delattr(cv2.aruco, "CharucoDetector")  # as in OpenCV before 4.7
    check = doctor_cmd.check_board_detection()
    assert check.status == "warn" and "opencv-python>=4.7" in check.fix
