#!/usr/bin/python3
"""Draws `oubli-bench churn` output: accuracy and mean served prefix length
over time, one line per run (sample, owner, owner+risk).

    plot_churn.py RESULTS.jsonl OUT.png

RESULTS.jsonl holds the bench's stdout (one JSON object per line; lines
that are not JSON are skipped). Exit 1 when it holds no churn_point line.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def read_points(path):
    runs, summaries = {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if not isinstance(row, dict):
                continue
            if row.get("bench") == "churn_point":
                runs.setdefault(row["run"], []).append(row)
            elif row.get("bench") == "churn":
                summaries[row["run"]] = row
    return runs, summaries


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    runs, summaries = read_points(argv[1])
    if not runs:
        print(f"{argv[1]}: no churn_point lines", file=sys.stderr)
        return 1
    fig, (acc, prefix) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    for name, points in runs.items():
        t = [p["t"] for p in points]
        acc.plot(t, [100 * p["accuracy"] for p in points], label=name)
        prefix.plot(t, [p["mean_served_prefix"] for p in points], label=name)
    acc.set_ylabel("ensemble accuracy (%)")
    prefix.set_ylabel("mean served prefix (slices)")
    prefix.set_xlabel("seconds into the deletion stream")
    any_summary = next(iter(summaries.values()), None)
    if any_summary:
        prefix.set_ylim(0, any_summary["slices"] + 0.2)
        acc.set_title(
            "oubli-bench churn: S=%d L=%d B=%d, %.2f ForgetOwner/s"
            % (any_summary["shards"], any_summary["slices"],
               any_summary["sequences"], any_summary["rate_per_s"]))
    for axis in (acc, prefix):
        axis.grid(alpha=0.3)
        axis.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(argv[2], dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
