"""What `twinarm fit-camera` draws: the board to print, and each picture over the sim's view from the fitted
camera (the arm as it stood, the board where it was said to lie), with the corners seen and where the fit puts
them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

PRINT_DPI = 300
PRINT_MARGIN = 0.01  # m of white around the board: the A4 board then fits A4 and US letter, landscape


#: The image files the board is written as (each says its resolution, so it prints at its size).
BOARD_FORMATS = (".png", ".jpg", ".jpeg")


def print_board(board: Any, path: Path) -> None:
    """The board at PRINT_DPI with a white margin of PRINT_MARGIN, as a PNG or JPEG that says its resolution."""
    import cv2

    if path.is_dir():
        raise SystemExit(f"--print-board {path} is a folder: give an image file, e.g. {path / 'board.png'}")
    if path.suffix.lower() not in BOARD_FORMATS:
        raise SystemExit(f"--print-board {path}: give an image file ending in {' or '.join(BOARD_FORMATS)}, "
                         f"e.g. {path.with_suffix('.png')}")  # fmt: skip
    px = round(board.square / 0.0254 * PRINT_DPI)
    pad = round(PRINT_MARGIN / 0.0254 * PRINT_DPI)
    img = cv2.copyMakeBorder(board.image(px), pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SystemExit(f"--print-board {path}: cannot make its folder ({exc.strerror or exc})") from None
    if not cv2.imwrite(str(path), img):
        raise SystemExit(f"--print-board: cannot write {path}")
    if path.suffix.lower() == ".png":
        _set_png_dpi(path, PRINT_DPI)
    else:
        _set_jpeg_dpi(path, PRINT_DPI)
    w, h = board.size
    print(f"wrote {path}: board {board.label} ({board.dictionary}), {w * 1000:.0f} x {h * 1000:.0f} mm plus a "
          f"{PRINT_MARGIN * 1000:g} mm margin; print at 100 % ({PRINT_DPI} dpi), then measure a square: if it is not "
          f"{board.square * 1000:g} mm, give --board with what it measures")  # fmt: skip


def _set_png_dpi(path: Path, dpi: int) -> None:
    """Add a pHYs chunk (pixels per metre) after the header, so printers print the board at its size."""
    import struct
    import zlib

    data = path.read_bytes()
    ppm = round(dpi / 0.0254)
    body = b"pHYs" + struct.pack(">IIB", ppm, ppm, 1)
    chunk = struct.pack(">I", 9) + body + struct.pack(">I", zlib.crc32(body))
    end_of_ihdr = 8 + 8 + 13 + 4
    path.write_bytes(data[:end_of_ihdr] + chunk + data[end_of_ihdr:])


def _set_jpeg_dpi(path: Path, dpi: int) -> None:
    """Set the density of the JFIF header OpenCV writes (units: dots per inch), as the PNG's pHYs chunk does."""
    import struct

    data = bytearray(path.read_bytes())
    if data[2:4] != b"\xff\xe0" or data[6:11] != b"JFIF\x00":  # no JFIF header to mark: printed as the printer sees fit
        return
    data[13:18] = struct.pack(">BHH", 1, dpi, dpi)
    path.write_bytes(bytes(data))


def sim_view(arm: str, camera: str, pose: Any, size: tuple[int, int], board: Any, placement: Any,
             joints: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """The sim's picture from `pose` at `size` (H, W): the arm at `joints` (spec units; default home) and the
    board where it was said to lie."""
    from twinarm.envs.camera_fit import board_scene_hook
    from twinarm.envs.camera_poses import apply_camera_poses
    from twinarm.envs.physics import ArmPhysics
    from twinarm.envs.render import CameraRenderer
    from twinarm.spec import CameraSpec

    shown = dataclasses.replace(placement, height=max(placement.height, 5e-4))  # not in the table's plane
    physics = ArmPhysics.from_arm(arm, scene_hooks=(board_scene_hook(board, shown),))
    apply_camera_poses(physics.model, {camera: pose})
    physics.reset(joints)
    renderer = CameraRenderer(physics.model, (CameraSpec(camera, *size),))
    try:
        return renderer.render(physics.data)[camera]
    finally:
        renderer.close()


def overlay(picture: np.ndarray, sim: np.ndarray, seen: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """The picture and the sim's view blended half and half; seen corners as green rings, where the fitted
    camera puts them as red crosses."""
    import cv2

    out = cv2.addWeighted(picture, 0.5, sim, 0.5, 0.0)
    r = max(3, round(min(picture.shape[:2]) / 120))
    for (x, y), (u, v) in zip(seen, fitted, strict=True):
        cv2.circle(out, (round(x), round(y)), r, (0, 255, 0), 1, cv2.LINE_AA)
        cv2.drawMarker(out, (round(u), round(v)), (255, 0, 0), cv2.MARKER_CROSS, 2 * r, 1, cv2.LINE_AA)
    return out


def write_overlays(arm: str, camera: str, fit: Any, board: Any, views: list[Any], pictures: list[np.ndarray],
                   joints: list[np.ndarray | None], out: Path, most: int = 8) -> list[Path]:  # fmt: skip
    """`fit_<camera>.png` (one per picture when several, the first `most`: `fit_<camera>_<i>.png`): each picture
    over the sim's view from the fitted camera, the arm as it stood and the board where that picture's
    placement put it."""
    import cv2

    from twinarm.envs.camera_fit import project

    paths = []
    for i, ((obj, seen, place, *body), picture, q) in enumerate(zip(views, pictures, joints, strict=True)):
        if i >= most:
            break
        size = picture.shape[:2]
        sim = sim_view(arm, camera, fit.pose, size, board, place, q)
        rot, t = place.board_to_world(board)
        seen_from = fit.pose.on(*body[0]) if body else fit.pose
        image = overlay(picture, sim, seen, project(seen_from, size, obj @ rot.T + t))
        path = out / (f"fit_{camera}.png" if len(views) == 1 else f"fit_{camera}_{i}.png")
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths
