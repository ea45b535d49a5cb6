#!/usr/bin/env python3
"""Convert a PyTorch checkpoint of the authors' LPM-Net code to lpmnet weights.

usage: pth2safetensors.py IN.pth OUT.safetensors

IN.pth holds a state_dict, or a dict with one under 'model', 'state_dict' or 'net'
(as the authors' training script saves it). A leading 'module.' (DataParallel) is
stripped from every name. The 92 tensors are checked by name and shape against
reference/lpmnet_ref.py; any missing, unknown or wrongly shaped tensor is reported by
name and nothing is written (exit status 1). OUT is written as float32 safetensors,
atomically (temporary file, then rename).
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))

import torch  # noqa: E402

import lpmnet_ref  # noqa: E402
import st  # noqa: E402


def extract_state_dict(obj):
    """The state_dict inside a loaded checkpoint."""
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "net"):
            if key in obj and isinstance(obj[key], (dict, torch.nn.Module)):
                return extract_state_dict(obj[key])
        return obj
    raise ValueError("not a state_dict or a dict holding one (got %s)" % type(obj).__name__)


def check(sd):
    """-> (tensors in canonical order, list of problems)."""
    expected = lpmnet_ref.param_table()
    clean, problems = {}, []
    for name, t in sd.items():
        key = name[len("module."):] if name.startswith("module.") else name
        if not torch.is_tensor(t):
            problems.append("%s: not a tensor (%s)" % (name, type(t).__name__))
            continue
        clean[key] = t
    known = {n for n, _ in expected}
    for name in sorted(set(clean) - known):
        problems.append("unknown tensor %s %s" % (name, tuple(clean[name].shape)))
    out = {}
    for name, shape in expected:
        if name not in clean:
            problems.append("missing tensor %s %s" % (name, shape))
        elif tuple(clean[name].shape) != shape:
            problems.append("wrong shape %s: %s, expected %s"
                            % (name, tuple(clean[name].shape), shape))
        elif not clean[name].is_floating_point():
            problems.append("%s: not floating point (%s)" % (name, clean[name].dtype))
        else:
            out[name] = clean[name].detach().cpu().to(torch.float32).contiguous()
    return out, problems


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Convert an LPM-Net PyTorch checkpoint (the authors' PMLNet state_dict) "
                    "into lpmnet float32 safetensors weights.",
        epilog="Exit status: 0 written, 1 checkpoint rejected (problems listed), 2 usage.")
    ap.add_argument("input", metavar="IN.pth", help="torch.save'd state_dict or checkpoint dict")
    ap.add_argument("output", metavar="OUT.safetensors", help="lpmnet weights to write")
    args = ap.parse_args(argv)
    try:
        obj = torch.load(args.input, map_location="cpu")
        sd = extract_state_dict(obj)
    except Exception as e:  # a broken file: report it with its name
        print("pth2safetensors: %s: %s" % (args.input, e), file=sys.stderr)
        return 1
    tensors, problems = check(sd)
    if problems:
        for p in problems:
            print("pth2safetensors: %s: %s" % (args.input, p), file=sys.stderr)
        print("pth2safetensors: %s: %d problem(s), nothing written" % (args.input, len(problems)),
              file=sys.stderr)
        return 1
    try:
        st.save(args.output, tensors, {"format": "lpmnet", "source": os.path.basename(args.input)})
    except OSError as e:
        print("pth2safetensors: %s: %s" % (args.output, e), file=sys.stderr)
        return 1
    n = sum(t.numel() for t in tensors.values())
    print("%s: %d tensors, %d parameters" % (args.output, len(tensors), n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
