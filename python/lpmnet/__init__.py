"""lpmnet from Python: LPM-Net 3-D medical image fusion on NumPy arrays.

Pure ctypes over the C library liblpmnet.so (no compiled extension); docs/python.md says how
to install it. The functions here are thin wrappers of include/lpmnet.h.

Orientation. A volume is a 3-D array indexed [i, j, k] = [x, y, z], as nibabel gives it
(``img.get_fdata()``). lpmnet stores x fastest, so the Fortran-order memory of such an array
IS lpmnet's layout: a Fortran-order float32 array is passed without a copy, any other array
(C order, another dtype) is converted first. Results are float32 arrays of the inputs' shape
in Fortran order, indexed the same way; ``nibabel.Nifti1Image(result, img.affine)`` writes one
with the input's geometry.

Threads. ctypes.CDLL releases the GIL for the duration of every call into the library, so
other Python threads run while a fusion, a metric or a training run computes (itself on
``threads`` OpenMP threads, default all cores).

Errors. A failure raises ``lpmnet.Error`` (a RuntimeError) with lpmnet's message, which
names the file or input and the problem; ``Error.status`` is the C status (1 usage, 2 input
or data, 3 internal), the exit code the command-line tool would give.

Locating the library: the environment variable LPMNET_LIBRARY (a path), else the installed
layout (the library beside the package, or in the libdir that ``cmake --install`` recorded in
lpmnet/_install.py), else ``ctypes.util.find_library('lpmnet')``.
"""

import ctypes
import ctypes.util
import os
import threading

import numpy as np

__all__ = ["Error", "fuse", "fuse_files", "metrics", "train", "models", "model_path",
           "version", "METRICS"]

# The twelve metrics of lpm_metric_name, in the library's order.
METRICS = ("ssim", "qabf", "mi", "scd", "vif", "ag", "psnr", "en", "sd", "sf", "nabf", "rsfe")


class Error(RuntimeError):
    """A failure reported by lpmnet: its message, and the C status in ``status``."""

    def __init__(self, message, status=3):
        super().__init__(message)
        self.status = status


# ----------------------------------------------------------------- the C declarations

_c_int64_3 = ctypes.c_int64 * 3
_PROGRESS = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)


class _Volume(ctypes.Structure):
    _fields_ = [("nx", ctypes.c_int64), ("ny", ctypes.c_int64), ("nz", ctypes.c_int64),
                ("data", ctypes.POINTER(ctypes.c_float)),
                ("affine", (ctypes.c_double * 4) * 4), ("pixdim", ctypes.c_float * 3),
                ("header", ctypes.c_void_p)]


class _Weights(ctypes.Structure):
    _fields_ = [("data", ctypes.POINTER(ctypes.c_float))]


class _FuseSettings(ctypes.Structure):
    _fields_ = [("method", ctypes.c_char_p), ("exact", ctypes.c_int), ("passes", ctypes.c_int),
                ("clip_lo", ctypes.c_double), ("clip_hi", ctypes.c_double),
                ("ct_window", ctypes.c_char_p), ("resample", ctypes.c_int),
                ("mask", ctypes.POINTER(ctypes.c_uint8)), ("mask_path", ctypes.c_char_p),
                ("threads", ctypes.c_int), ("progress", _PROGRESS),
                ("progress_ctx", ctypes.c_void_p), ("device", ctypes.c_int)]


class _StepLosses(ctypes.Structure):
    _fields_ = [(name, ctypes.c_double) for name in
                ("total", "mse_af", "mse_bf", "ssim_af", "ssim_bf", "ssim_adet", "ssim_bdet",
                 "sf_f", "edge_f", "mse_rec", "target_f", "qabf_f", "sf_ratio")]


class _TrainReport(ctypes.Structure):
    _fields_ = [("step", ctypes.c_int64), ("iters", ctypes.c_int64), ("epoch", ctypes.c_int64),
                ("lr", ctypes.c_double), ("seconds", ctypes.c_double), ("losses", _StepLosses)]


_STEP_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_TrainReport))


class _TrainOptions(ctypes.Structure):
    _fields_ = [("data", ctypes.c_char_p), ("pair", ctypes.c_char_p),
                ("mask_key", ctypes.c_char_p), ("out", ctypes.c_char_p),
                ("init", ctypes.c_char_p), ("val", ctypes.c_char_p),
                ("iters", ctypes.c_int64), ("val_every", ctypes.c_int64),
                ("ckpt_every", ctypes.c_int64), ("shape", _c_int64_3), ("crop", _c_int64_3),
                ("flip", ctypes.c_int), ("batch", ctypes.c_int64),
                ("lr", ctypes.c_double), ("alpha", ctypes.c_double), ("beta", ctypes.c_double),
                ("gamma", ctypes.c_double), ("edge", ctypes.c_double), ("rec", ctypes.c_double),
                ("seed", ctypes.c_uint64), ("resume", ctypes.c_int), ("threads", ctypes.c_int),
                ("quiet", ctypes.c_int), ("progress", _PROGRESS), ("on_step", _STEP_FN),
                ("ctx", ctypes.c_void_p), ("force", ctypes.c_int), ("device", ctypes.c_int),
                ("stop", ctypes.c_void_p), ("comm", ctypes.c_void_p),
                ("clip_lo", ctypes.c_double), ("clip_hi", ctypes.c_double),
                ("ct_window", ctypes.c_char_p), ("target", ctypes.c_double),
                ("qabf", ctypes.c_double), ("aug_gamma", ctypes.c_double),
                ("aug_noise", ctypes.c_double), ("aug_rotate", ctypes.c_int),
                ("sf_match", ctypes.c_double)]


class _ModelFamily(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("pairs", ctypes.c_char_p)]


_P = ctypes.POINTER
_SIGNATURES = {
    "lpm_last_error": (ctypes.c_char_p, []),
    "lpm_version": (ctypes.c_char_p, []),
    "lpm_model_families": (_P(_ModelFamily), []),
    "lpm_model_path": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]),
    "lpm_weights_load_model": (ctypes.c_int, [_P(_Weights), ctypes.c_char_p]),
    "lpm_weights_free": (None, [_P(_Weights)]),
    "lpm_volume_free": (None, [_P(_Volume)]),
    "lpm_fuse_pair": (ctypes.c_int, [_P(_Weights), _P(_Volume), ctypes.c_char_p, _P(_Volume),
                                     ctypes.c_char_p, _P(_Volume), _P(_FuseSettings)]),
    "lpm_prepare_pair": (ctypes.c_int, [_P(_Volume), ctypes.c_char_p, _P(_Volume), ctypes.c_char_p,
                                        _P(_FuseSettings), _P(_Volume), _P(_Volume)]),
    "lpm_fuse_files": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                      ctypes.c_char_p, _P(_FuseSettings)]),
    "lpm_check_unit_range": (ctypes.c_int, [_P(_Volume), ctypes.c_char_p]),
    "lpm_metrics_volumes": (ctypes.c_int, [_P(ctypes.c_double), _P(_Volume), _P(_Volume),
                                           _P(_Volume), _P(ctypes.c_uint8), ctypes.c_int]),
    "lpm_seam_volume": (ctypes.c_int, [_P(ctypes.c_double), _P(_Volume), _P(ctypes.c_uint8),
                                       ctypes.c_int]),
    "lpm_train_options_init": (None, [_P(_TrainOptions)]),
    "lpm_train": (ctypes.c_int, [_P(_TrainOptions)]),
}

_lib = None
_lib_lock = threading.Lock()


def _candidates():
    env = os.environ.get("LPMNET_LIBRARY")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "liblpmnet.so.0")
    try:  # written by cmake --install: the libdir relative to this folder
        from . import _install
        yield os.path.normpath(os.path.join(here, _install.LIBDIR, "liblpmnet.so.0"))
    except ImportError:
        pass
    found = ctypes.util.find_library("lpmnet")
    if found:
        yield found


def _library():
    """liblpmnet.so, loaded on first use (ctypes.CDLL: calls release the GIL)."""
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        tried = []
        for path in _candidates():
            if os.sep in path and not os.path.exists(path):
                tried.append(path)
                continue
            try:
                lib = ctypes.CDLL(path)
            except OSError as e:
                tried.append(f"{path} ({e})")
                continue
            for name, (restype, argtypes) in _SIGNATURES.items():
                fn = getattr(lib, name)
                fn.restype, fn.argtypes = restype, argtypes
            _lib = lib
            return lib
        raise Error("liblpmnet.so not found (tried: " + (", ".join(tried) or "nothing") +
                    "); install it (docs/python.md) or set LPMNET_LIBRARY to its path", 1)


def _check(status):
    if status:
        raise Error(_library().lpm_last_error().decode(errors="replace"), status)


def _encode(s):
    return None if s is None else os.fsencode(s)


# -------------------------------------------------------------------- volumes in and out

def _as_volume(array, name):
    """A Fortran-order float32 view or copy of a 3-D array, and the lpm_volume over it."""
    arr = np.asarray(array)
    if arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise Error(f"{name}: expected a 3-D array indexed [x, y, z], got shape {arr.shape}", 1)
    if arr.size == 0:
        raise Error(f"{name}: the array is empty (shape {arr.shape})", 1)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or \
            np.issubdtype(arr.dtype, np.complexfloating):
        raise Error(f"{name}: expected real numbers, got dtype {arr.dtype}", 1)
    data = np.asfortranarray(arr, dtype=np.float32)
    vol = _Volume(nx=data.shape[0], ny=data.shape[1], nz=data.shape[2],
                  data=data.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
    for i in range(4):
        vol.affine[i][i] = 1.0
    for i in range(3):
        vol.pixdim[i] = 1.0
    return data, vol


def _take_volume(vol):
    """Copies a volume the library allocated into a Fortran-order array and frees it."""
    try:
        out = np.empty((vol.nx, vol.ny, vol.nz), dtype=np.float32, order="F")
        ctypes.memmove(out.ctypes.data, vol.data, out.nbytes)
        return out
    finally:
        _library().lpm_volume_free(ctypes.byref(vol))


def _mask(mask, shape):
    if mask is None:
        return None, None
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        raise Error(f"mask: shape {m.shape} differs from the volumes' {tuple(shape)}", 1)
    if np.issubdtype(m.dtype, np.floating) and np.isnan(m).any():
        raise Error("mask: NaN voxels (a mask is nonzero inside, 0 outside)", 2)
    m = np.asfortranarray(m != 0, dtype=np.uint8)
    return m, m.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))


def _progress_callback(progress):
    if progress is None:
        return _PROGRESS()
    return _PROGRESS(lambda ctx, done, total: progress(done, total))


def _settings(method, exact, passes, threads, clip, ct_window, resample, progress):
    s = _FuseSettings(method=_encode(method), exact=int(bool(exact)), passes=passes or 0,
                      ct_window=_encode(ct_window), resample=int(bool(resample)),
                      threads=threads or 0, progress=_progress_callback(progress))
    if clip is not None:
        s.clip_lo, s.clip_hi = float(clip[0]), float(clip[1])
    return s


# ----------------------------------------------------------------------------- the API

def version():
    """The library's version, e.g. '0.1.0'."""
    return _library().lpm_version().decode()


def models():
    """The bundled model families: {name: what it fuses}."""
    fam = _library().lpm_model_families()
    out, i = {}, 0
    while fam[i].name:
        out[fam[i].name.decode()] = fam[i].pairs.decode()
        i += 1
    return out


def model_path(family, ext=".safetensors"):
    """Path of a bundled model's weights (ext '.safetensors') or card ('.md')."""
    buf = ctypes.create_string_buffer(8192)
    _check(_library().lpm_model_path(_encode(family), _encode(ext), buf, len(buf)))
    return os.fsdecode(buf.value)


def fuse(a, b, model="mri", method=None, exact=False, passes=None, threads=None, clip=None,
         ct_window=None, mask=None, progress=None):
    """Fuses two co-registered volumes as ``lpmnet fuse`` does.

    a, b: 3-D arrays of one shape, any real dtype, C or Fortran order, indexed [x, y, z]
    (nibabel's ``get_fdata()``). model: a bundled family (mri, ct-mr, pet-mr, pet-ct) or a
    .safetensors file. method: None/'lpmnet' or a classical method ('average', 'max', 'pca',
    'dwt', 'laplacian', 'guided'). exact: the authors' computation (plain min-max, one pass).
    passes: 1, 2, 4, 8, 16 (default 4). clip: (low, high) percentiles (default (0.5, 100)).
    ct_window: 'bone', 'soft', 'lung' or 'WIDTH,LEVEL'. mask: an array of a's shape; each
    input is scaled inside its nonzero voxels and set to 0 outside (``--mask``).
    threads: default all cores. progress(done, total): called as LPM-Net works.
    Returns a float32 array of a's shape in [0, 1] (Fortran order).
    """
    lib = _library()
    da, va = _as_volume(a, "a")
    db, vb = _as_volume(b, "b")
    settings = _settings(method, exact, passes, threads, clip, ct_window, False, progress)
    m, settings.mask = _mask(mask, da.shape)
    weights = _Weights()
    lpmnet = method is None or method == "lpmnet"
    if lpmnet:
        _check(lib.lpm_weights_load_model(ctypes.byref(weights), _encode(model)))
    try:
        fused = _Volume()
        _check(lib.lpm_fuse_pair(ctypes.byref(weights) if lpmnet else None, ctypes.byref(va), b"a",
                                 ctypes.byref(vb), b"b", ctypes.byref(fused), ctypes.byref(settings)))
        return _take_volume(fused)
    finally:
        lib.lpm_weights_free(ctypes.byref(weights))
        del da, db, m  # the arrays the C structures point into lived until here


def fuse_files(a_path, b_path, out_path, model="mri", method=None, exact=False, passes=None,
               threads=None, clip=None, ct_window=None, resample=False, mask=None,
               progress=None):
    """``lpmnet fuse A B -o OUT``: reads two NIfTI files, fuses them (options as fuse) and
    writes out_path (float32, A's geometry). resample: B resampled onto A's grid first.
    mask: a mask file on A's grid."""
    settings = _settings(method, exact, passes, threads, clip, ct_window, resample, progress)
    settings.mask_path = _encode(mask)
    _check(_library().lpm_fuse_files(_encode(a_path), _encode(b_path), _encode(out_path),
                                     _encode(model), ctypes.byref(settings)))
    return out_path


def prepare(a, b, clip=None, ct_window=None, mask=None):
    """a and b brought to [0, 1] as ``fuse`` brings them before fusing (clip, ct_window and
    mask as for fuse; the default clip is (0.5, 100)): the inputs a fusion is scored against.
    Returns two float32 arrays of a's shape (Fortran order)."""
    lib = _library()
    da, va = _as_volume(a, "a")
    db, vb = _as_volume(b, "b")
    settings = _settings(None, False, None, None, clip, ct_window, False, None)
    m, settings.mask = _mask(mask, da.shape)
    a01, b01 = _Volume(), _Volume()
    try:
        _check(lib.lpm_prepare_pair(ctypes.byref(va), b"a", ctypes.byref(vb), b"b",
                                    ctypes.byref(settings), ctypes.byref(a01), ctypes.byref(b01)))
        return _take_volume(a01), _take_volume(b01)
    finally:
        del da, db, m


def metrics(fused, a, b, mask=None, normalize=True, seam=True, clip=None, ct_window=None):
    """The twelve fusion metrics of fused against its sources a and b, as ``lpmnet metrics A
    B F``: a dict {name: value} in METRICS order, then seam_x, seam_y, seam_z (seam=True).
    normalize: min-max each volume first (the tool's default). clip, ct_window (``--clip``,
    ``--ct-window``): instead, a and b scaled as fuse scales them (``prepare``) and fused
    scored as it is, which must then lie in [0, 1]: the numbers ``lpmnet eval`` reports.
    mask: an array of the same shape, nonzero inside: where to score. An undefined metric is
    nan (psnr inf when F equals A or B)."""
    lib = _library()
    df, vf = _as_volume(fused, "fused")
    if clip is not None or ct_window is not None:
        if not normalize:
            raise Error("normalize=False scores a and b as they are; clip and ct_window scale "
                        "them as fuse does: give one of the two", 1)
        _check(lib.lpm_check_unit_range(ctypes.byref(vf), b"fused"))
        a, b = prepare(a, b, clip, ct_window)
        normalize = False
    da, va = _as_volume(a, "a")
    db, vb = _as_volume(b, "b")
    m, mptr = _mask(mask, df.shape)
    values = (ctypes.c_double * len(METRICS))()
    _check(lib.lpm_metrics_volumes(values, ctypes.byref(va), ctypes.byref(vb), ctypes.byref(vf),
                                   mptr, int(bool(normalize))))
    out = {name: float(values[i]) for i, name in enumerate(METRICS)}
    if seam:
        index = (ctypes.c_double * 3)()
        _check(lib.lpm_seam_volume(index, ctypes.byref(vf), mptr, int(bool(normalize))))
        out.update(seam_x=float(index[0]), seam_y=float(index[1]), seam_z=float(index[2]))
    del df, da, db, m
    return out


def train(data, out, pair=None, iters=3000, shape=None, crop=None, init=None, resume=False,
          lr=None, seed=None, threads=None, quiet=True, progress=None, on_step=None, **options):
    """``lpmnet train --data DATA --out OUT``: a whole (resumable) training run; returns the
    path of OUT/model.safetensors.

    progress(done, total) and on_step(report) are called after every step; report is a dict
    (step, iters, epoch, lr, seconds and the loss terms: total, mse_af, ..., mse_rec). A
    callback that returns True, or raises, stops the run after a checkpoint (the exception
    is raised again here). Other options (mask_key, val, val_every, ckpt_every, batch, flip,
    alpha, beta, gamma, edge, target, qabf, sf_match, rec, force, device, clip_lo, clip_hi, ct_window,
    aug_gamma, aug_noise, aug_rotate) as in lpm_train_options of include/lpmnet.h; clip_lo=0,
    clip_hi=99.5 is `--clip 0,99.5`."""
    lib = _library()
    o = _TrainOptions()
    lib.lpm_train_options_init(ctypes.byref(o))
    keep = [_encode(data), _encode(out), _encode(pair), _encode(init)]
    o.data, o.out, o.pair, o.init = keep
    o.iters = iters
    if shape is not None:
        o.shape = _c_int64_3(*shape)
    if crop is not None:
        o.crop = _c_int64_3(*crop)
    if lr is not None:
        o.lr = lr
    if seed is not None:
        o.seed = seed
    o.resume, o.threads, o.quiet = int(bool(resume)), threads or 0, int(bool(quiet))
    for key, value in options.items():
        if key not in dict(_TrainOptions._fields_) or key in ("progress", "on_step", "ctx", "stop", "comm"):
            raise Error(f"train: unknown option '{key}'", 1)
        if isinstance(value, str):
            value = _encode(value)
            keep.append(value)
        setattr(o, key, value)

    raised = []

    def step(ctx, report_ptr):
        try:
            r = report_ptr.contents
            if progress is not None:
                progress(r.step, r.iters)
            if on_step is not None:
                report = {"step": r.step, "iters": r.iters, "epoch": r.epoch, "lr": r.lr,
                          "seconds": r.seconds}
                report.update({name: getattr(r.losses, name) for name, _ in _StepLosses._fields_})
                return 1 if on_step(report) else 0
            return 0
        except BaseException as e:  # noqa: B902 - handed back to the caller below
            raised.append(e)
            return 1

    callback = _STEP_FN(step) if (progress or on_step) else _STEP_FN()
    o.on_step = callback
    _check(lib.lpm_train(ctypes.byref(o)))
    if raised:
        raise raised[0]
    return os.path.join(os.fsdecode(out), "model.safetensors")
