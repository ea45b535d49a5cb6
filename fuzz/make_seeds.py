#!/usr/bin/python3
"""Write the fuzzers' seed corpora into OUT (the build folder's seeds/, made at build time so
no binary file is committed):

  OUT/nifti/        small valid NIfTI-1 and NIfTI-2 .nii files: both byte orders, the scalar
                    datatypes, scl_slope/inter, qform and sform, a singleton 4th dimension,
                    an extension; plus a few near misses (RGB, 2-D, truncated)
  OUT/safetensors/  tiny F32/F16/BF16 files with metadata, a full LPM-Net weights file, and
                    the repository's bundled model when it is there
  OUT/data/         CSV data specs naming the volumes fuzz_data writes next to them, and
                    split files (IndicesTrain.txt) for its folder dataset

Needs numpy (Debian's /usr/bin/python3): /usr/bin/python3 fuzz/make_seeds.py OUT [REPO_ROOT]
"""
import json
import os
import shutil
import struct
import sys

import numpy as np

# NIfTI datatype codes and the numpy type of each
DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4",
          1024: "i8", 1280: "u8"}


def nifti1(data, code, order="<", slope=0.0, inter=0.0, qform=1, sform=1, ext=b"", dim4=False,
           magic=b"n+1\0"):
    """A single-file NIfTI-1 image: header (348 bytes), extender, extension, voxels."""
    shape = data.shape[::-1]  # numpy (z, y, x) -> NIfTI (x, y, z)
    dims = [4 if dim4 else len(shape)] + list(shape) + ([1] if dim4 else [])
    dims += [1] * (8 - len(dims))
    vox_offset = 352 + len(ext)
    h = bytearray(348)
    o = order
    struct.pack_into(o + "i", h, 0, 348)
    h[38] = ord("r")
    struct.pack_into(o + "8h", h, 40, *dims)
    struct.pack_into(o + "hh", h, 70, code, np.dtype(DTYPES[code]).itemsize * 8)
    struct.pack_into(o + "8f", h, 76, 1.0, 1.0, 1.5, 2.0, 1.0, 1.0, 1.0, 1.0)
    struct.pack_into(o + "fff", h, 108, vox_offset, slope, inter)
    h[123] = 10  # mm, s
    h[148:148 + 16] = b"lpmnet fuzz seed"
    struct.pack_into(o + "hh", h, 252, qform, sform)
    struct.pack_into(o + "6f", h, 256, 0.0, 0.0, 0.0, -10.0, 5.0, 2.5)
    struct.pack_into(o + "12f", h, 280, 1.0, 0, 0, -10.0, 0, 1.5, 0, 5.0, 0, 0, 2.0, 2.5)
    h[344:348] = magic
    extender = bytes([1 if ext else 0, 0, 0, 0])
    return bytes(h) + extender + ext + data.astype(order + DTYPES[code]).tobytes()


def nifti2(data, code, order="<", slope=0.0, inter=0.0, qform=1, sform=0):
    """A single-file NIfTI-2 image: header (540 bytes), extender, voxels."""
    shape = data.shape[::-1]
    dims = [len(shape)] + list(shape) + [1] * (7 - len(shape))
    h = bytearray(540)
    o = order
    struct.pack_into(o + "i", h, 0, 540)
    h[4:12] = b"n+2\0\r\n\x1a\n"
    struct.pack_into(o + "hh", h, 12, code, np.dtype(DTYPES[code]).itemsize * 8)
    struct.pack_into(o + "8q", h, 16, *dims)
    struct.pack_into(o + "8d", h, 104, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    struct.pack_into(o + "q", h, 168, 544)
    struct.pack_into(o + "dd", h, 176, slope, inter)
    h[240:240 + 16] = b"lpmnet fuzz seed"
    struct.pack_into(o + "ii", h, 344, qform, sform)
    struct.pack_into(o + "6d", h, 352, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0)
    struct.pack_into(o + "12d", h, 400, 2.0, 0, 0, 1.0, 0, 1.0, 0, 2.0, 0, 0, 1.0, 3.0)
    struct.pack_into(o + "i", h, 500, 10)
    return bytes(h) + b"\0\0\0\0" + data.astype(order + DTYPES[code]).tobytes()


def nifti_seeds(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    vol = rng.integers(0, 100, size=(2, 3, 4))  # D, H, W
    seeds = {}
    for code, t in DTYPES.items():
        for order, tag in (("<", "le"), (">", "be")):
            seeds[f"n1_{t}_{tag}.nii"] = nifti1(vol, code, order)
    seeds["n1_f4_scaled.nii"] = nifti1(vol, 16, "<", slope=0.5, inter=-3.0)
    seeds["n1_i2_scaled_be.nii"] = nifti1(vol, 4, ">", slope=2.0, inter=1.0)
    seeds["n1_f4_qform_only.nii"] = nifti1(vol, 16, "<", qform=1, sform=0)
    seeds["n1_f4_no_geometry.nii"] = nifti1(vol, 16, "<", qform=0, sform=0)
    seeds["n1_f4_4d.nii"] = nifti1(vol, 16, "<", dim4=True)
    seeds["n1_f4_ext.nii"] = nifti1(vol, 16, "<", ext=struct.pack("<ii", 16, 6) + b"comment\0")
    seeds["n1_f4_nan.nii"] = nifti1(np.full((2, 2, 2), np.nan), 16, "<")
    seeds["n1_u1_1x1x1.nii"] = nifti1(np.ones((1, 1, 1)), 2, "<")
    seeds["n1_2d.nii"] = nifti1(vol[0], 16, "<")
    seeds["n1_truncated.nii"] = nifti1(vol, 16, "<")[:-5]
    rgb = nifti1(vol.astype(np.uint8), 2, "<")
    seeds["n1_rgb.nii"] = rgb[:70] + struct.pack("<hh", 128, 24) + rgb[74:]
    for code, t in ((16, "f4"), (64, "f8"), (4, "i2"), (768, "u4")):
        for order, tag in (("<", "le"), (">", "be")):
            seeds[f"n2_{t}_{tag}.nii"] = nifti2(vol, code, order)
    seeds["n2_f4_scaled_sform.nii"] = nifti2(vol, 16, "<", slope=3.0, inter=1.0, sform=2)
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


def safetensors(tensors, meta=None):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, offset, blobs = {}, 0, []
    if meta is not None:
        header["__metadata__"] = meta
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def bf16(a):
    return (np.asarray(a, "<f4").view("<u4") >> 16).astype("<u2").tobytes()


def safetensors_seeds(out, repo):
    os.makedirs(out, exist_ok=True)
    x = np.arange(6, dtype="<f4") / 4
    seeds = {
        "f32.safetensors": safetensors([("x", "F32", (2, 3), x.tobytes())], {"format": "pt"}),
        "f16.safetensors": safetensors([("h", "F16", (3, 2), x.astype("<f2").tobytes())]),
        "bf16.safetensors": safetensors([("b", "BF16", (6,), bf16(x))], {"step": "12", "seed": "3"}),
        "scalar.safetensors": safetensors([("s", "F32", (), x[:1].tobytes())]),
        "empty_tensor.safetensors": safetensors([("e", "F32", (0, 4), b"")]),
        "two.safetensors": safetensors([("a", "F32", (2,), x[:2].tobytes()),
                                        ("b.weight", "F16", (1, 1, 2), x[:2].astype("<f2").tobytes())]),
        "empty.safetensors": safetensors([], {}),
    }
    # A full LPM-Net weights file, from the repository's bundled model when it is there.
    model = os.path.join(repo, "models", "lpmnet-mri.safetensors")
    if os.path.exists(model):
        shutil.copyfile(model, os.path.join(out, "lpmnet-mri.safetensors"))
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


# fuzz_data writes a.nii, b.nii, m.nii, c.nii, z.nii, g.nii.gz and bad.nii next to the spec.
CSV_SEEDS = {
    "pair.csv": "a,b\na.nii,b.nii\n",
    "mask.csv": "a,b,mask\na.nii,b.nii,m.nii\n",
    "rows.csv": "a,b\n# comment\na.nii,b.nii\n\n g.nii.gz , a.nii \nb.nii,a.nii\n",
    "bom_crlf.csv": "\ufeffa,b\r\na.nii,b.nii\r\n",
    "grid.csv": "a,b\na.nii,c.nii\n",
    "constant.csv": "a,b,mask\nz.nii,a.nii,m.nii\n",
    "missing.csv": "a,b\na.nii,nothing.nii\n",
    "bad.csv": "a,b\nbad.nii,a.nii\n",
    "absolute.csv": "a,b\n/nonexistent/a.nii,./b.nii\n",
    "noheader.csv": "a.nii,b.nii\n",
    "short.csv": "a,b,mask\na.nii,b.nii\n",
    # fuzz_data also uses each input as the split file of a folder with subjects s1, s2, 002
    "split_names.txt": "s1\n002\n",
    "split_indices.txt": "0\n 2 \n7\n",
}


def data_seeds(out):
    os.makedirs(out, exist_ok=True)
    for name, text in CSV_SEEDS.items():
        with open(os.path.join(out, name), "w", encoding="utf-8", newline="") as f:
            f.write(text)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: make_seeds.py OUT [REPO_ROOT]")
    out = sys.argv[1]
    repo = sys.argv[2] if len(sys.argv) == 3 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    nifti_seeds(os.path.join(out, "nifti"))
    safetensors_seeds(os.path.join(out, "safetensors"), repo)
    data_seeds(os.path.join(out, "data"))


if __name__ == "__main__":
    main()
