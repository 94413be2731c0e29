"""Make the low-poly visual meshes of an arm from its full-resolution STLs (reproducible, dev-only).

Software rendering cost grows with triangles, and the CAD exports carry ~20-50k each, so visual
geoms load `<arm>/visual/*.stl` made here, while collision geoms keep `<arm>/meshes/*.stl` untouched.

    python -m twinarm.assets.decimate_meshes --arm so101 --faces 1500
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

import numpy as np

from twinarm.assets import arm_dir


def read_stl(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a binary or ASCII STL into (vertices (V,3) float32, faces (F,3) int64), welding duplicates."""
    raw = path.read_bytes()
    if raw[:5] == b"solid" and b"facet" in raw[:512]:
        nums = [line.split()[1:] for line in raw.decode("ascii", "replace").splitlines() if "vertex" in line]
        tri = np.asarray(nums, dtype=np.float32).reshape(-1, 3, 3)
    else:
        (count,) = struct.unpack_from("<I", raw, 80)
        rec = np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
        if len(raw) < 84 + count * rec.itemsize:
            raise ValueError(f"{path}: truncated binary STL ({count} triangles announced)")
        tri = np.frombuffer(raw, dtype=rec, count=count, offset=84)["v"]
    verts, inverse = np.unique(tri.reshape(-1, 3), axis=0, return_inverse=True)
    return verts.astype(np.float32), inverse.reshape(-1, 3).astype(np.int64)


def write_stl(path: Path, verts: np.ndarray, faces: np.ndarray) -> None:
    """Write a binary STL with per-face normals."""
    tri = verts[faces].astype(np.float32)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    rec = np.zeros(len(faces), dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    rec["n"], rec["v"] = normals, tri
    header = b"twinarm decimated visual mesh".ljust(80, b" ")
    path.write_bytes(header + struct.pack("<I", len(faces)) + rec.tobytes())


def decimate(verts: np.ndarray, faces: np.ndarray, max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric-error decimation down to about `max_faces` triangles (no-op when already smaller)."""
    import fast_simplification

    if len(faces) <= max_faces:
        return verts, faces
    v, f = verts, faces
    # One pass stops early on CAD meshes with many small shells; repeat while it still makes progress.
    for _ in range(8):
        if len(f) <= max_faces:
            break
        v2, f2 = fast_simplification.simplify(v, f.astype(np.int32), target_reduction=1.0 - max_faces / len(f), agg=9)
        if len(f2) >= len(f) * 0.98:
            break
        v, f = np.asarray(v2, dtype=np.float32), np.asarray(f2, dtype=np.int64)
    # Quadric decimation keeps open CAD borders intact; vertex clustering on a growing grid finishes the job.
    cell = 5e-4
    while len(f) > max_faces and cell < 0.02:
        v, f = cluster_vertices(v, f, cell)
        cell *= 1.4
    return v, f


def cluster_vertices(verts: np.ndarray, faces: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices sharing a grid cell of size `cell` (metres) and drop the faces that collapse."""
    keys = np.floor(verts / cell).astype(np.int64)
    _, cluster, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    cluster = cluster.reshape(-1)
    centers = np.zeros((len(counts), 3))
    np.add.at(centers, cluster, verts)
    centers /= counts[:, None]
    f = cluster[faces]
    keep = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    f = np.unique(np.sort(f[keep], axis=1), axis=0, return_index=True)[1]
    f = cluster[faces][keep][np.sort(f)]
    return centers.astype(np.float32), f


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arm", required=True, help="asset folder name, e.g. so101")
    parser.add_argument("--faces", type=int, default=1500, help="target triangle count per mesh")
    args = parser.parse_args(argv)
    src, dst = arm_dir(args.arm) / "meshes", arm_dir(args.arm) / "visual"
    dst.mkdir(exist_ok=True)
    total_in = total_out = 0
    for stl in sorted(src.glob("*.stl")):
        v, f = read_stl(stl)
        v2, f2 = decimate(v, f, args.faces)
        write_stl(dst / stl.name, v2, f2)
        total_in, total_out = total_in + len(f), total_out + len(f2)
        print(f"{stl.name}: {len(f)} -> {len(f2)} triangles")
    print(f"total: {total_in} -> {total_out} triangles in {dst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
