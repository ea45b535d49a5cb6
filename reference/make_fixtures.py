#!/usr/bin/env python3
"""Write every test fixture: make_fixtures.py OUTDIR

Imports each reference/fixtures_*.py (sorted by name) and calls its write(OUTDIR), which
may return the paths it wrote. One failing module does not stop the others, but the exit
status is then 1, so CTest's fixture setup fails loudly."""
import glob
import importlib
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) == 2 else 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(2)
    failed = []
    t_all = time.time()
    for path in sorted(glob.glob(os.path.join(HERE, "fixtures_*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        t0 = time.time()
        before = {f: os.path.getmtime(f) for f in glob.glob(os.path.join(outdir, "*"))}
        try:
            torch.manual_seed(0)
            written = importlib.import_module(name).write(outdir)
        except Exception:
            traceback.print_exc()
            print("%s: FAILED after %.1f s" % (name, time.time() - t0), flush=True)
            failed.append(name)
            continue
        if isinstance(written, str):
            written = [written]
        if not written:
            written = sorted(f for f in glob.glob(os.path.join(outdir, "*"))
                             if before.get(f) != os.path.getmtime(f))
        print("%s: %.1f s" % (name, time.time() - t0), flush=True)
        for f in written:
            print("  %s (%d bytes)" % (f, os.path.getsize(f)), flush=True)
    print("all fixtures: %.1f s%s" % (time.time() - t_all,
                                      ", FAILED: " + " ".join(failed) if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
