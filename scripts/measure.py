#!/usr/bin/env python3
"""Run a command and print its wall time and peak RSS (children's ru_maxrss): measure.py CMD [ARGS...]"""
import resource
import subprocess
import sys
import time

t0 = time.time()
rc = subprocess.run(sys.argv[1:]).returncode
peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
print(f"[measure] rc={rc} wall_s={time.time() - t0:.1f} peak_rss_gib={peak_gb:.2f} cmd={' '.join(sys.argv[1:3])}",
      flush=True)
sys.exit(rc)
