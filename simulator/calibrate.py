#!/usr/bin/env python3
"""Device-behaviour figures from the shared real captures, for the simulator's defaults.

Usage: python3 simulator/calibrate.py [PCAPS_DIR]   (default ../shared/testdata/pcaps)
Needs tshark. Prints the tables recorded in simulator/CALIBRATION.md.
"""
import collections
import csv
import datetime as dt
import glob
import os
import re
import statistics
import subprocess
import sys

PCAPS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "testdata", "pcaps")
LAB_PCS = ("dc:fb:48", "40:ec:99")  # fixed lab machines (Fryza README): not people


def probes(path):
    out = subprocess.run(
        ["tshark", "-n", "-r", path, "-Y", "wlan.fc.type_subtype == 4", "-T", "fields",
         "-E", "separator=,", "-e", "frame.time_epoch", "-e", "wlan.sa",
         "-e", "radiotap.dbm_antsignal"],
        capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        t, mac, rssi = (line.split(",") + [""])[:3]
        yield float(t), mac, int(rssi) if rssi else None


def local(mac):
    return int(mac[:2], 16) & 2 != 0


def q(values, p):
    values = sorted(values)
    return values[int(p * (len(values) - 1))] if values else float("nan")


def fryza():
    print("## Fryza (university lab, one ESP32 sniffer, a day each)")
    for path in sorted(glob.glob(os.path.join(PCAPS, "fryza", "*.pcap"))):
        rows = list(probes(path))
        by_mac = collections.defaultdict(list)
        for t, mac, _ in rows:
            by_mac[mac].append(t)
        loc = [m for m in by_mac if local(m)]
        glob_ = [m for m in by_mac if not local(m)]
        gaps = [b - a for ts in by_mac.values() for a, b in zip(sorted(ts), sorted(ts)[1:])]
        intra = [g for g in gaps if g < 1.0]
        inter = [g for g in gaps if g >= 1.0]
        life = [max(by_mac[m]) - min(by_mac[m]) for m in loc]
        rssi = [r for *_, r in rows if r is not None]
        print(f"{os.path.basename(path)}: {len(rows)} probes, {len(by_mac)} MACs, "
              f"randomized share of MACs {len(loc)/len(by_mac):.3f}, "
              f"of frames {sum(len(by_mac[m]) for m in loc)/len(rows):.3f}")
        print(f"  frames per randomized MAC p50/p90/p99 {q([len(by_mac[m]) for m in loc], .5)}/"
              f"{q([len(by_mac[m]) for m in loc], .9)}/{q([len(by_mac[m]) for m in loc], .99)}; "
              f"per global MAC p50/p90 {q([len(by_mac[m]) for m in glob_], .5)}/"
              f"{q([len(by_mac[m]) for m in glob_], .9)}")
        print(f"  randomized MAC lifetime s p50/p90/p99 {q(life, .5):.1f}/{q(life, .9):.1f}/"
              f"{q(life, .99):.0f}")
        print(f"  same-MAC gaps: {len(intra)/len(gaps):.2f} within a burst (<1 s, p50 "
              f"{q(intra, .5)*1000:.0f} ms); between bursts p50/p90 {q(inter, .5):.1f}/"
              f"{q(inter, .9):.1f} s")
        print(f"  RSSI dBm p10/p50/p90 {q(rssi, .1)}/{q(rssi, .5)}/{q(rssi, .9)}")
        occupancy(path[:-5] + ".csv")


def occupancy(csv_path):
    if not os.path.exists(csv_path):
        return
    windows = collections.defaultdict(lambda: (set(), set(), []))
    for r in csv.DictReader(open(csv_path), delimiter=";"):
        src = r["src"]
        if src.startswith(LAB_PCS):
            continue
        t = dt.datetime.strptime(r["datetime"][:19], "%Y-%m-%d %H:%M:%S")
        w = windows[t.replace(minute=t.minute // 5 * 5, second=0)]
        w[0].add(src)
        if not local(src):
            w[1].add(src)
        if r["occupancy"]:
            w[2].append(float(r["occupancy"]))
    pts = [(len(a), len(g), sum(o) / len(o)) for a, g, o in windows.values() if o]
    occ = [p for p in pts if p[2] > 0]
    people = sum(p[2] for p in occ)
    print(f"  occupancy truth, 5-min windows ({len(pts)}): distinct MACs per person "
          f"{sum(p[0] for p in occ)/people:.2f} (global only {sum(p[1] for p in occ)/people:.2f}); "
          f"corr(occupancy, MACs) {statistics.correlation([p[2] for p in pts], [p[0] for p in pts]):.2f}, "
          f"global {statistics.correlation([p[2] for p in pts], [p[1] for p in pts]):.2f}")


def pintor():
    print("## Pintor (labelled: one phone per file letter, mode in the name; ch 1/6/11 merged)")
    print("device mode probes MACs span_s bursts mean_burst_interval_s frames_per_burst randomized")
    agg = collections.defaultdict(list)
    for path in sorted(glob.glob(os.path.join(PCAPS, "pintor", "*.pcap"))):
        b = os.path.basename(path)
        agg[(b[0], re.search(r"mode([A-Z]+)", b).group(1))].extend(probes(path))
    for (dev, mode), rows in sorted(agg.items()):
        rows.sort()
        if not rows:
            continue
        macs = {m for _, m, _ in rows}
        span = rows[-1][0] - rows[0][0]
        bursts = 1 + sum(1 for a, b in zip(rows, rows[1:]) if b[0] - a[0] > 1.0)
        rand = sum(1 for m in macs if local(m)) / len(macs)
        print(f"{dev} {mode:3} {len(rows):6} {len(macs):4} {span:6.0f} {bursts:4} "
              f"{span/max(bursts-1, 1):7.1f} {len(rows)/bursts:6.1f} {rand:.2f}")


def baccichet():
    print("## Baccichet (iOS 16 and Android, several radios merged)")
    for path in sorted(glob.glob(os.path.join(PCAPS, "baccichet", "*.pcap"))):
        rows = sorted(probes(path))
        macs = {m for _, m, _ in rows}
        bursts = 1 + sum(1 for a, b in zip(rows, rows[1:]) if b[0] - a[0] > 1.0)
        span = rows[-1][0] - rows[0][0]
        print(f"{os.path.basename(path)}: {len(rows)} probes, {len(macs)} MACs "
              f"({sum(1 for m in macs if local(m))} randomized), {bursts} bursts over {span:.0f} s, "
              f"{len(rows)/bursts:.1f} frames per burst")


if __name__ == "__main__":
    fryza()
    pintor()
    baccichet()
