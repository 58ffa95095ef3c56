"""Times float32 matmul in NumPy for the shapes given as MxKxN, printing 'MxKxN GFLOP/s' (median).

Used by `tokc bench-kernels --numpy` so that both libraries are measured in one run with the
same thread count (set through OMP/OPENBLAS_NUM_THREADS by the caller).
"""
import argparse
import time

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("shapes", nargs="+")
parser.add_argument("--threads", type=int, default=0)
parser.add_argument("--repeats", type=int, default=5)
args = parser.parse_args()

for shape in args.shapes:
    m, k, n = (int(x) for x in shape.split("x"))
    a = np.full((m, k), 0.5, dtype=np.float32)
    b = np.full((k, n), 0.25, dtype=np.float32)
    for _ in range(2):
        a @ b
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        a @ b
        rates.append(2.0 * m * k * n / (time.perf_counter() - start) / 1e9)
    rates.sort()
    print(shape, rates[len(rates) // 2])
