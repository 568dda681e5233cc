"""theta_ecs vs esper vs plain numpy at 1M entities: ``python benchmarks/ecs_bench.py --json``."""

import sys

from theta_ecs.bench.ecs import main

if __name__ == "__main__":
    sys.exit(main())
