#!/usr/bin/env python3
"""The Python package (python/lpmnet, ctypes over the build's liblpmnet.so) against the tool:
lpmnet.fuse on nibabel-loaded arrays equals `lpmnet fuse` (C and Fortran order, an int16
input, a classical method), fuse_files writes what the tool writes, errors raise lpmnet.Error
with the file's name, lpmnet.metrics equals `lpmnet metrics --json` (with and without a
mask), and train runs with its callbacks. ctest runs it as `python3 tests/test_python.py`."""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

SOURCE = os.environ.get("LPM_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BIN = os.environ.get("LPM_BIN", "")
BUILD = os.path.dirname(os.path.abspath(BIN)) if BIN else ""
LIBRARY = os.path.join(BUILD, "liblpmnet.so.0")


def skip_reason():
    if os.environ.get("LPM_SANITIZED") == "1":
        return ("the sanitizer build's liblpmnet.so needs the ASan runtime loaded first, which a "
                "plain python3 does not have")
    if not BIN:
        return "LPM_BIN is not set (run through ctest)"
    if not os.path.exists(LIBRARY):
        return f"no shared library at {LIBRARY}"
    return None


if __name__ == "__main__":
    why = skip_reason()
    if why:
        print(f"skip: {why}")
        sys.exit(77)
    import pytest
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))

import ctypes  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import shutil  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

if skip_reason():
    pytest.skip(skip_reason(), allow_module_level=True)
nib = pytest.importorskip("nibabel")
os.environ["LPMNET_LIBRARY"] = LIBRARY
sys.path.insert(0, os.path.join(SOURCE, "python"))
import lpmnet  # noqa: E402

TMP = os.path.join(os.environ.get("LPM_TMP", "/tmp"), "python")


def run(*args):
    r = subprocess.run([BIN, *args], capture_output=True, text=True)
    assert r.returncode == 0, f"lpmnet {' '.join(args)}: {r.stderr}"
    return r.stdout


def load(path):
    return nib.load(path).get_fdata()


@pytest.fixture(scope="module")
def phantom():
    d = os.path.join(TMP, "ph")
    os.makedirs(TMP, exist_ok=True)
    run("phantom", "--out", d, "--shape", "32,40,36")
    return {k: os.path.join(d, f"{k}.nii.gz") for k in ("t1", "t2", "ct", "labels")}


@pytest.fixture(scope="module")
def tool_fused(phantom):
    out = os.path.join(TMP, "tool.nii.gz")
    run("fuse", phantom["t1"], phantom["t2"], "-o", out)
    return out


def like(img, data, path):
    """data saved with img's header (its qform and sform), in data's own type."""
    out = nib.Nifti1Image(data, None, img.header)
    out.set_data_dtype(data.dtype)
    nib.save(out, path)


def assert_close(x, y, tol=1e-6):
    assert x.shape == y.shape
    assert np.abs(np.asarray(x, dtype=np.float64) - y).max() <= tol


def test_library_is_the_build_s():
    assert lpmnet.version() == "0.1.0"
    assert os.path.samefile(lpmnet._library()._name, LIBRARY)
    assert set(lpmnet.models()) == {"mri", "ct-mr", "pet-mr", "pet-ct"}
    # ctypes.CDLL (not PyDLL) drops the GIL around every call
    assert type(lpmnet._library()) is ctypes.CDLL


def test_fuse_equals_tool(phantom, tool_fused):
    a, b = load(phantom["t1"]), load(phantom["t2"])
    fused = lpmnet.fuse(a, b)
    assert fused.dtype == np.float32 and fused.shape == a.shape
    assert_close(fused, load(tool_fused))


def test_c_and_fortran_order(phantom, tool_fused):
    a, b = load(phantom["t1"]), load(phantom["t2"])
    c_order = lpmnet.fuse(np.ascontiguousarray(a), np.ascontiguousarray(b))
    f_order = lpmnet.fuse(np.asfortranarray(a, dtype=np.float32), np.asfortranarray(b))
    assert np.array_equal(c_order, f_order)
    assert_close(c_order, load(tool_fused))


def test_int16_input(phantom):
    img = nib.load(phantom["t1"])
    a16 = np.round(img.get_fdata()).astype(np.int16)
    path = os.path.join(TMP, "t1_int16.nii.gz")
    like(img, a16, path)
    out = os.path.join(TMP, "tool_int16.nii.gz")
    run("fuse", path, phantom["t2"], "-o", out)
    assert_close(lpmnet.fuse(a16, load(phantom["t2"])), load(out))


def test_classical_method(phantom):
    out = os.path.join(TMP, "tool_pca.nii.gz")
    run("fuse", phantom["t1"], phantom["t2"], "-o", out, "--method", "pca")
    assert_close(lpmnet.fuse(load(phantom["t1"]), load(phantom["t2"]), method="pca"), load(out))


def test_mask_clip_and_exact(phantom):
    """--mask with --clip, and --exact, through fuse (arrays) and fuse_files (files)."""
    img = nib.load(phantom["t1"])
    a, b = img.get_fdata(), load(phantom["t2"])
    mask = load(phantom["labels"]) > 0
    mask_path = os.path.join(TMP, "head.nii.gz")
    like(img, mask.astype(np.uint8), mask_path)
    out = os.path.join(TMP, "tool_masked.nii.gz")
    run("fuse", phantom["t1"], phantom["t2"], "-o", out, "--mask", mask_path, "--clip", "1,99", "--passes", "2")
    tool = load(out)
    assert_close(lpmnet.fuse(a, b, mask=mask, clip=(1, 99), passes=2), tool)
    ours = os.path.join(TMP, "files_masked.nii.gz")
    lpmnet.fuse_files(phantom["t1"], phantom["t2"], ours, mask=mask_path, clip=(1, 99), passes=2)
    assert_close(load(ours), tool, 0)
    run("fuse", phantom["t1"], phantom["t2"], "-o", out, "--exact")
    assert_close(lpmnet.fuse(a, b, exact=True), load(out))
    with pytest.raises(lpmnet.Error, match="exact"):
        lpmnet.fuse(a, b, exact=True, mask=mask)


def test_fuse_files(phantom, tool_fused):
    out = os.path.join(TMP, "files.nii.gz")
    assert lpmnet.fuse_files(phantom["t1"], phantom["t2"], out) == out
    assert_close(load(out), load(tool_fused), 0)


def test_fuse_files_names_overflowing_weights(phantom):
    """Finite weights whose activations overflow: the error names the weights file, and
    nothing is written."""
    raw = open(lpmnet.model_path("mri"), "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = bytearray(raw)
    for name, t in header.items():
        if name != "__metadata__":
            lo, hi = t["data_offsets"]
            data[8 + n + lo:8 + n + hi] = np.full((hi - lo) // 4, 9999, np.float32).tobytes()
    huge = os.path.join(TMP, "huge_weights.safetensors")
    open(huge, "wb").write(bytes(data))
    out = os.path.join(TMP, "huge_out.nii.gz")
    with pytest.raises(lpmnet.Error, match="huge_weights.safetensors: .*non-finite") as e:
        lpmnet.fuse_files(phantom["t1"], phantom["t2"], out, model=huge)
    assert e.value.status == 2 and not os.path.exists(out)


def test_errors_name_the_file(phantom):
    missing = os.path.join(TMP, "no_such_volume.nii.gz")
    with pytest.raises(lpmnet.Error) as e:
        lpmnet.fuse_files(missing, phantom["t2"], os.path.join(TMP, "never.nii.gz"))
    assert "no_such_volume.nii.gz" in str(e.value) and e.value.status == 2
    assert isinstance(e.value, RuntimeError)
    with pytest.raises(lpmnet.Error, match="unknown model 't1'"):
        lpmnet.fuse(np.ones((4, 4, 4)), np.ones((4, 4, 4)), model="t1")
    with pytest.raises(lpmnet.Error, match="constant"):
        lpmnet.fuse(np.ones((4, 4, 4)), np.arange(64.0).reshape(4, 4, 4), method="average")
    with pytest.raises(lpmnet.Error, match="3-D"):
        lpmnet.fuse(np.ones((4, 4)), np.ones((4, 4)))


def metrics_of_tool(*args):
    return json.loads(run("metrics", *args, "--json"))


def assert_metrics_equal(ours, tool):
    for name, value in tool.items():
        if name in ("seconds", "undefined"):
            continue
        if value is None:
            assert not math.isfinite(ours[name]), name
        else:
            assert math.isclose(ours[name], value, rel_tol=1e-8, abs_tol=1e-12), (name, ours[name], value)


def test_metrics_equal_tool(phantom, tool_fused):
    a, b, f = load(phantom["t1"]), load(phantom["t2"]), load(tool_fused)
    ours = lpmnet.metrics(f, a, b)
    assert list(ours)[:12] == list(lpmnet.METRICS)
    assert_metrics_equal(ours, metrics_of_tool(phantom["t1"], phantom["t2"], tool_fused))


def test_metrics_with_mask(phantom, tool_fused):
    a, b, f = load(phantom["t1"]), load(phantom["t2"]), load(tool_fused)
    mask = load(phantom["labels"]) >= 3  # grey matter and inwards
    mask_path = os.path.join(TMP, "mask.nii.gz")
    like(nib.load(phantom["t1"]), mask.astype(np.uint8), mask_path)
    ours = lpmnet.metrics(f, a, b, mask=mask)
    assert_metrics_equal(ours, metrics_of_tool(phantom["t1"], phantom["t2"], tool_fused, "--mask", mask_path))


def test_metrics_scaled_as_fuse_equal_tool(phantom):
    """metrics(clip=, ct_window=) is `lpmnet metrics --clip/--ct-window`; prepare() gives the
    inputs fuse scales (min-max of a CT's Hounsfield units would score differently)."""
    ct, t1 = load(phantom["ct"]), load(phantom["t1"])
    out = os.path.join(TMP, "ct_max.nii.gz")
    run("fuse", phantom["ct"], phantom["t1"], "--method", "max", "--ct-window", "soft", "-o", out)
    f = load(out)
    ours = lpmnet.metrics(f, ct, t1, ct_window="soft")
    assert_metrics_equal(ours, metrics_of_tool(phantom["ct"], phantom["t1"], out, "--ct-window", "soft"))
    a01, b01 = lpmnet.prepare(ct, t1, ct_window="soft")
    assert 0 <= a01.min() and a01.max() <= 1 and a01.shape == ct.shape
    assert_close(lpmnet.fuse(ct, t1, method="max", ct_window="soft"), np.maximum(a01, b01))
    assert lpmnet.metrics(f, ct, t1)["ssim"] != ours["ssim"]
    with pytest.raises(lpmnet.Error, match="must lie in"):
        lpmnet.metrics(ct, ct, t1, clip=(0.5, 100))
    nan = f.copy()
    nan[1, 2, 3] = np.nan
    with pytest.raises(lpmnet.Error, match=r"fused: voxel \(1,2,3\) is NaN"):
        lpmnet.metrics(nan, ct, t1, ct_window="soft")


def test_other_threads_run_during_a_fusion(phantom):
    """ctypes.CDLL drops the GIL: a Python thread keeps ticking through the C call."""
    a, b = load(phantom["t1"]), load(phantom["t2"])
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.monotonic())
            stop.wait(0.002)

    t = threading.Thread(target=tick)
    t.start()
    try:
        start = time.monotonic()
        lpmnet.fuse(a, b, passes=16)
        seconds = time.monotonic() - start
    finally:
        stop.set()
        t.join()
    during = [x for x in ticks if start <= x <= start + seconds]
    # the call is nearly all C; with the GIL held there, the thread would stop at its start
    assert len(during) >= 5 and during[-1] - during[0] >= 0.5 * seconds


def test_train_with_callbacks(phantom):
    csv = os.path.join(TMP, "pairs.csv")
    with open(csv, "w") as f:
        f.write(f"a,b\n{phantom['t1']},{phantom['t2']}\n")
    out = os.path.join(TMP, "run")
    shutil.rmtree(out, ignore_errors=True)
    seen, reports = [], []
    model = lpmnet.train(csv, out, iters=2, crop=(16, 16, 16), threads=2,
                         progress=lambda done, total: seen.append((done, total)),
                         on_step=reports.append)
    assert os.path.exists(model)
    assert seen == [(1, 2), (2, 2)]
    assert [r["step"] for r in reports] == [1, 2] and all(math.isfinite(r["total"]) for r in reports)
    with pytest.raises(lpmnet.Error, match="already holds a checkpoint"):
        lpmnet.train(csv, out, iters=2, crop=(16, 16, 16))
    # a callback's True stops the run after that step, with a checkpoint to resume from
    stopped = os.path.join(TMP, "run_stopped")
    shutil.rmtree(stopped, ignore_errors=True)
    lpmnet.train(csv, stopped, iters=5, crop=(16, 16, 16), threads=2, on_step=lambda r: r["step"] >= 2)
    with open(os.path.join(stopped, "train.csv")) as f:
        assert len(f.read().splitlines()) == 1 + 2
    # an exception in a callback stops the run and comes back out of train
    shutil.rmtree(stopped, ignore_errors=True)
    with pytest.raises(KeyError):
        lpmnet.train(csv, stopped, iters=5, crop=(16, 16, 16), threads=2, on_step=lambda r: {}["x"])


def test_train_without_callbacks(phantom):
    csv = os.path.join(TMP, "pairs.csv")
    with open(csv, "w") as f:
        f.write(f"a,b\n{phantom['t1']},{phantom['t2']}\n")
    out = os.path.join(TMP, "run_plain")
    shutil.rmtree(out, ignore_errors=True)
    model = lpmnet.train(csv, out, iters=1, crop=(16, 16, 16), threads=2)
    assert os.path.exists(model) and os.path.exists(os.path.join(out, "train.csv"))
    with pytest.raises(lpmnet.Error, match="crop"):
        lpmnet.train(csv, out + "_bad", iters=1, crop=(15, 16, 16))
    # the inputs' scaling, as `lpmnet train --clip 0,99`: other weights, and refused when bad
    clipped = os.path.join(TMP, "run_clip")
    shutil.rmtree(clipped, ignore_errors=True)
    lpmnet.train(csv, clipped, iters=1, crop=(16, 16, 16), threads=2, clip_lo=0, clip_hi=99)
    with open(model, "rb") as f1, open(os.path.join(clipped, "model.safetensors"), "rb") as f2:
        assert f1.read() != f2.read()
    with pytest.raises(lpmnet.Error, match="clip"):
        lpmnet.train(csv, out + "_badclip", iters=1, crop=(16, 16, 16), clip_lo=50, clip_hi=10)
    # the random contrast curve, as `lpmnet train --aug-gamma 2`: other weights; 5 refused
    curved = os.path.join(TMP, "run_aug_gamma")
    shutil.rmtree(curved, ignore_errors=True)
    lpmnet.train(csv, curved, iters=1, crop=(16, 16, 16), threads=2, aug_gamma=2.0)
    with open(model, "rb") as f1, open(os.path.join(curved, "model.safetensors"), "rb") as f2:
        assert f1.read() != f2.read()
    with pytest.raises(lpmnet.Error, match="aug_gamma"):
        lpmnet.train(csv, out + "_badgamma", iters=1, crop=(16, 16, 16), aug_gamma=5.0)
    # noise and quarter turns, as `--aug-noise 0.05 --aug-rotate`: other weights; a crop
    # with H != W refused for turns
    turned = os.path.join(TMP, "run_aug_turns")
    shutil.rmtree(turned, ignore_errors=True)
    lpmnet.train(csv, turned, iters=1, crop=(16, 16, 16), threads=2, aug_noise=0.05, aug_rotate=1)
    with open(model, "rb") as f1, open(os.path.join(turned, "model.safetensors"), "rb") as f2:
        assert f1.read() != f2.read()
    with pytest.raises(lpmnet.Error, match="aug_rotate"):
        lpmnet.train(csv, out + "_badturn", iters=1, crop=(16, 16, 32), aug_rotate=1)
    with pytest.raises(lpmnet.Error, match="unknown option 'stop'"):
        lpmnet.train(csv, out + "_stop", iters=1, crop=(16, 16, 16), stop=1)


def test_train_session_steps():
    """lpm_train_session_*: the one-step API of include/lpmnet.h, called through ctypes."""
    lib = lpmnet._library()
    lib.lpm_train_session_new.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int64, ctypes.c_int64,
                                          ctypes.c_int64, ctypes.c_char_p, ctypes.c_uint64]
    lib.lpm_train_session_step.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                           ctypes.POINTER(lpmnet._TrainOptions), ctypes.c_double,
                                           ctypes.POINTER(lpmnet._StepLosses)]
    lib.lpm_train_session_weights.argtypes = [ctypes.c_void_p]
    lib.lpm_train_session_weights.restype = ctypes.POINTER(lpmnet._Weights)
    lib.lpm_train_session_free.argtypes = [ctypes.c_void_p]
    session = ctypes.c_void_p()
    assert lib.lpm_train_session_new(ctypes.byref(session), 16, 16, 15, None, 1) == 1  # not a multiple of 16
    assert lib.lpm_train_session_new(ctypes.byref(session), 16, 16, 16, b"mri", 1) == 0
    try:
        rng = np.random.default_rng(0)
        a, b = (np.asfortranarray(rng.random((16, 16, 16), dtype=np.float32)) for _ in range(2))
        w = lib.lpm_train_session_weights(session).contents
        before = np.ctypeslib.as_array(w.data, shape=(26051,)).copy()
        options = lpmnet._TrainOptions()
        lib.lpm_train_options_init(ctypes.byref(options))
        losses = lpmnet._StepLosses()
        for _ in range(2):
            assert lib.lpm_train_session_step(session, a.ctypes.data, b.ctypes.data, ctypes.byref(options), 1.0,
                                              ctypes.byref(losses)) == 0
        assert math.isfinite(losses.total) and 0 < losses.ssim_af < 1
        assert losses.sf_ratio == 0  # reported only when its term is on
        options.sf_match = 100.0
        assert lib.lpm_train_session_step(session, a.ctypes.data, b.ctypes.data, ctypes.byref(options), 1.0,
                                          ctypes.byref(losses)) == 0
        assert 0 < losses.sf_ratio < 10 and math.isfinite(losses.total)
        after = np.ctypeslib.as_array(w.data, shape=(26051,))
        assert np.isfinite(after).all() and not np.array_equal(before, after)
    finally:
        lib.lpm_train_session_free(session)


def test_struct_mirrors_match_the_header():
    """Every public struct the package mirrors has the header's size and field offsets, so a
    field added to include/lpmnet.h without its ctypes twin (or the other way) is caught here
    rather than by a call that reads past the end of a settings struct."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler to read the header's layout with")
    mirrors = {"lpm_volume": lpmnet._Volume, "lpm_weights": lpmnet._Weights,
               "lpm_fuse_settings": lpmnet._FuseSettings, "lpm_step_losses": lpmnet._StepLosses,
               "lpm_train_report": lpmnet._TrainReport, "lpm_train_options": lpmnet._TrainOptions,
               "lpm_model_family": lpmnet._ModelFamily}
    lines = ["#include <lpmnet.h>", "#include <stddef.h>", "#include <stdio.h>", "int main(void) {"]
    for c_name, cls in mirrors.items():
        lines.append(f'    printf("{c_name} size %zu\\n", sizeof({c_name}));')
        for field, _ in cls._fields_:
            lines.append(f'    printf("{c_name} {field} %zu\\n", offsetof({c_name}, {field}));')
    lines += ["    return 0;", "}"]
    os.makedirs(TMP, exist_ok=True)
    src, exe = os.path.join(TMP, "layout.c"), os.path.join(TMP, "layout")
    with open(src, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = subprocess.run([cc, "-I", os.path.join(SOURCE, "include"), "-o", exe, src], capture_output=True, text=True)
    assert r.returncode == 0, f"a mirrored field is not in the header: {r.stderr}"
    c_layout = dict(line.rsplit(" ", 1) for line in subprocess.run([exe], capture_output=True, text=True,
                                                                   check=True).stdout.splitlines())
    for c_name, cls in mirrors.items():
        assert int(c_layout[f"{c_name} size"]) == ctypes.sizeof(cls), f"{c_name}: size differs from {cls.__name__}"
        for field, _ in cls._fields_:
            assert int(c_layout[f"{c_name} {field}"]) == getattr(cls, field).offset, f"{c_name}.{field}"
