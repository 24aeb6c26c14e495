#!/usr/bin/env python3
"""Plots training curves (OUT/log.csv of tools/train_agegender.py) into one PNG: loss, validation
gender accuracy, age-group exact and 1-off accuracy, age MAE, one line per run.
Needs matplotlib (Debian: python3-matplotlib); offline documentation tool only.

  /usr/bin/python3 tools/plot_training.py --out docs/results/training.png \
      "ResNet-18 w0.5 64px=runs/r18/log.csv" "VGG16-BN w0.5 32px=runs/vgg/log.csv"
"""
import argparse
import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="LABEL=path/to/log.csv")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    panels = [("loss", "training loss", 1), ("gender_acc", "val gender accuracy (%)", 100),
              ("group_exact", "val age group exact (%)", 100), ("group_1off", "val age group 1-off (%)", 100),
              ("age_mae", "val age MAE (years)", 1)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4))
    for spec in a.runs:
        label, path = spec.split("=", 1)
        rows = list(csv.DictReader(open(path)))
        ep = [int(r["epoch"]) + 1 for r in rows]
        for ax, (key, title, scale) in zip(axes, panels):
            ax.plot(ep, [float(r[key]) * scale for r in rows], label=label)
    for ax, (key, title, _) in zip(axes, panels):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[-1].set_ylim(top=12)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.out, dpi=90)
    print(a.out)


if __name__ == "__main__":
    main()
