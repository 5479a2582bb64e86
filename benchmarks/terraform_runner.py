"""What pyctl's terraform runner costs per call over a bare subprocess (issue 17: output followed from files,
interrupts forwarded).

Runs the same command N times three ways, interleaved: a bare `subprocess.run` with pipes (the floor),
`Terraform.run` (the runner as it is), and a stand-in `sh -c 'exit 0'` through both to show the fixed
overhead without Terraform's own start-up. Prints the median and the 90th percentile per call, in ms.

    .venv/bin/python benchmarks/terraform_runner.py --repeat 30
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from collections.abc import Callable

from pyctl.terraform import Terraform, resolve_executable


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    exe = resolve_executable()
    tf = Terraform(exe, console=None)
    true_tf = Terraform("/bin/true", console=None)
    ways: dict[str, Callable[[], object]] = {
        "bare subprocess.run: terraform version -json": lambda: subprocess.run(
            [exe, "version", "-json"], capture_output=True, check=True
        ),
        "Terraform.run: terraform version -json": lambda: tf.run(["version", "-json"], stream=False),
        "bare subprocess.run: /bin/true": lambda: subprocess.run(
            ["/bin/true"], capture_output=True, check=True
        ),
        "Terraform.run: /bin/true": lambda: true_tf.run([], stream=False),
    }
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.repeat):
        for name, fn in ways.items():
            samples[name].append(timed(fn))
    print(f"{'way':50} {'median ms':>10} {'p90 ms':>8}")
    for name, values in samples.items():
        values.sort()
        p90 = values[int(0.9 * (len(values) - 1))]
        print(f"{name:50} {statistics.median(values):10.1f} {p90:8.1f}")


if __name__ == "__main__":
    main()
