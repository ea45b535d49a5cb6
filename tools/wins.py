#!/usr/bin/env python3
"""Counts, for `lpmnet eval`'s metrics.csv, on how many of the paper's eight metrics LPM-Net's
median over the cases beats each other method's median (rSFe by |rSFe|), and prints a
Markdown table with the medians and the worst seam index per axis.
Usage: tools/wins.py METRICS_CSV [LABEL]   (standard library only)"""
import csv
import statistics
import sys

PAPER = ["ssim", "qabf", "mi", "scd", "vif", "ag", "sd", "rsfe"]


def median(rows, key):
    values = [float(r[key]) for r in rows]
    return statistics.median(abs(v) for v in values) if key == "rsfe" else statistics.median(values)


def better(a, b, key):
    return a < b if key == "rsfe" else a > b


def worst(values):
    """The largest defined seam index ("n/a" where the axis is too short for one)."""
    defined = [v for v in values if v == v]
    return "%.3f" % max(defined) if defined else "n/a"


def main():
    rows = list(csv.DictReader(open(sys.argv[1])))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    by = {m: [r for r in rows if r["method"] == m] for m in methods}
    med = {m: {k: median(by[m], k) for k in PAPER} for m in methods}
    print("| method | " + " | ".join("\\|rSFe\\|" if k == "rsfe" else k.upper() for k in PAPER)
          + " | LPM-Net better on | worst seam x / y / z |")
    print("|---" * (len(PAPER) + 3) + "|")
    for m in methods:
        wins = "" if m == "lpmnet" else "%d of 8" % sum(
            better(med["lpmnet"][k], med[m][k], k) for k in PAPER)
        seam = " / ".join(worst([float(r["seam_" + a]) for r in by[m]]) for a in "xyz")
        print("| %s | %s | %s | %s |" % (m, " | ".join("%.3f" % med[m][k] for k in PAPER), wins, seam))


if __name__ == "__main__":
    main()
