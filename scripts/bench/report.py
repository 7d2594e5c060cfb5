#!/usr/bin/env python3
"""Turns bench_gpu.sh's records.jsonl into the side-by-side table and the JSON records of
docs/benchmarks/<date>-<gpu>.json (each record gets commit, gpu and date)."""
import argparse
import json
import os
import re


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("records")
    p.add_argument("--commit", required=True)
    p.add_argument("--gpu", required=True)
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--date", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="FLUX.1-dev")
    a = p.parse_args()
    recs = [json.loads(l) for l in open(a.records) if l.strip()]
    for r in recs:
        r.update(commit=a.commit, gpu=a.gpu, date=a.date)
    slug = re.sub(r"[^a-z0-9]+", "-", a.gpu.lower()).strip("-")
    path = os.path.join(a.out, f"{a.date}-{slug}.json")
    with open(path, "w") as f:
        json.dump(recs, f, indent=1)
    print(f"\n{a.title} | {a.gpu} x{a.gpus} | commit {a.commit} | {a.date}")
    print(f"{'system':<20} {'gpus':>4} {'layout':<10} {'metric':<14} {'value':>10}  unit")
    for r in recs:
        print(f"{r['system']:<20} {r['gpus']:>4} {r['layout']:<10} {r['metric']:<14} {r['value']:>10}  {r['unit']:<3} {r.get('note', '')}")
    print(f"records: {path}")


if __name__ == "__main__":
    main()
