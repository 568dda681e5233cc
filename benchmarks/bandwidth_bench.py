"""Nightly bandwidth run: ``python benchmarks/bandwidth_bench.py`` (same options as
``theta bench bandwidth``); writes benchmarks/results/bandwidth.json and .png and exits 1 on a
bandwidth regression over 5% against the previous JSON."""

import sys

from theta_ecs.bench.bandwidth import main

if __name__ == "__main__":
    sys.exit(main())
