"""Plots the autoscale bench's CSVs: brokers and consumer lag over time, one line per
policy. Usage: plot_autoscale.py OUT.png CSV..."""

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    out, *files = sys.argv[1:]
    fig, (brokers, lag) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for f in files:
        name = Path(f).stem.removeprefix("autoscale-")
        rows = list(csv.DictReader(open(f)))
        t = [int(r["t_seconds"]) / 60 for r in rows]
        brokers.plot(t, [int(r["serving_brokers"]) for r in rows], label=name)
        lag.plot(t, [float(r["lag_records"]) / 1e6 for r in rows], label=name)
    demand = [float(r["demand_bytes_per_s"]) / 60e6 for r in rows]
    brokers.plot(t, demand, "k:", label="brokers needed")
    brokers.set_ylabel("serving brokers")
    lag.set_ylabel("lag (million records)")
    lag.set_xlabel("minutes")
    brokers.legend()
    lag.legend()
    brokers.set_title("10x spike on 3 feeds for 10 minutes")
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    main()
