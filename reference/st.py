"""safetensors read/write without the safetensors package.

File layout: u64 little-endian header length N, N bytes of JSON
{"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...},
then the raw little-endian tensor bytes; offsets are relative to the end of the header.
"""
import json
import os
import struct
import tempfile

import numpy as np
import torch

# safetensors dtype name <-> numpy little-endian dtype
_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?",
}
_TORCH = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def to_bytes(tensors, metadata=None):
    """Serialise {name: tensor} (kept in the given order) to safetensors bytes."""
    header, blobs, pos = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        if name == "__metadata__":
            raise ValueError("st: '__metadata__' is not a tensor name")
        t = torch.as_tensor(t).detach().cpu().contiguous()
        if t.dtype not in _TORCH:
            raise ValueError("st: %s: unsupported dtype %s" % (name, t.dtype))
        dt = _TORCH[t.dtype]
        raw = t.numpy().astype(_DTYPES[dt], copy=False).tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [pos, pos + len(raw)]}
        blobs.append(raw)
        pos += len(raw)
    js = json.dumps(header, separators=(",", ":")).encode("utf-8")
    js += b" " * (-len(js) % 8)  # keep the data 8-byte aligned, as the reference library does
    return struct.pack("<Q", len(js)) + js + b"".join(blobs)


def save(path, tensors, metadata=None):
    """Write atomically: a temporary file in the same folder, fsync, rename."""
    data = to_bytes(tensors, metadata)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".tmp.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def from_bytes(data, what="<bytes>"):
    """Parse safetensors bytes -> ({name: torch tensor}, metadata dict)."""
    if len(data) < 8:
        raise ValueError("%s: too short for a safetensors file" % what)
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError("%s: header length %d past end of file" % (what, n))
    header = json.loads(data[8:8 + n].decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("%s: header is not a JSON object" % what)
    meta = header.pop("__metadata__", None) or {}
    body = memoryview(data)[8 + n:]
    out = {}
    for name, info in header.items():
        dt = info.get("dtype")
        if dt not in _DTYPES:
            raise ValueError("%s: %s: unsupported dtype %r" % (what, name, dt))
        shape = [int(s) for s in info["shape"]]
        begin, end = (int(v) for v in info["data_offsets"])
        npdt = np.dtype(_DTYPES[dt])
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not 0 <= begin <= end <= len(body) or end - begin != count * npdt.itemsize:
            raise ValueError("%s: %s: bad data_offsets %r for shape %r" % (what, name, [begin, end], shape))
        arr = np.frombuffer(body[begin:end], dtype=npdt).reshape(shape)
        out[name] = torch.from_numpy(arr.astype(arr.dtype.newbyteorder("="), copy=True))
    return out, meta


def load(path):
    """Read a safetensors file -> ({name: torch tensor}, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    return from_bytes(data, path)
