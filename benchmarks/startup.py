"""Start-up: wall seconds from launching a `gallery` command to its first request or answer.

- crawl: until the first request reaches the demo site (served on 127.0.0.1 here); also with
  --render never,
- search --hash: until it exits with its answer, on a gallery of the demo site,
- stats: the same,
- `python -c pass`: the interpreter alone, the floor under all three on this machine.

Each command runs --runs times per checkout; with several --checkout (e.g. this branch and the
main checkout), the checkouts alternate run by run, so load on a shared machine falls on both.
All run with this interpreter: the same installed libraries, only the project's code differs.

    .venv/bin/python benchmarks/startup.py [--runs 5] [--checkout . --checkout /work/main]
"""

import argparse
import hashlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gallery.demo import build_demo_site  # noqa: E402
from gallery.site import StaticSite  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _gallery(checkout: Path, *args: str) -> list[str]:
    # Run from the checkout: `python -m` puts it first on sys.path, ahead of the installed project.
    return [sys.executable, "-m", "gallery", *args]


def _reap(process: subprocess.Popen) -> float:
    """Wait for the process; its CPU seconds (user + system; not those of its own children)."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def time_to_exit(command: list[str], *, cwd: Path) -> tuple[float, float]:
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu = _reap(process)
    wall = time.perf_counter() - start
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}")
    return wall, cpu


def time_to_first_request(command: list[str], *, cwd: Path, site: StaticSite, timeout: float = 60) -> tuple[float, float]:
    site.requests.clear()
    start = time.perf_counter()
    # A session of its own: the crawl and any worker processes it started are stopped together.
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while not site.requests:
            if process.poll() is not None:
                raise RuntimeError(f"{' '.join(command)} exited with {process.returncode} before any request")
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"no request after {timeout} s")
            time.sleep(0.005)
        wall = time.perf_counter() - start
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        cpu = _reap(process)  # to the kill, a few ms after the request; its analysis workers not counted
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--checkout", type=Path, action="append", help="a checkout of the project (repeatable; default this one)")
    args = parser.parse_args()
    checkouts = [c.resolve() for c in (args.checkout or [REPO])]

    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp, StaticSite(build_demo_site(Path(tmp) / "site")) as site:
        seed = site.url + "/"
        gallery = str(Path(tmp) / "gallery")
        crawl = ["crawl", seed, "--allow-loopback", "--delay", "0", "--json"]
        print(f"building a gallery of the demo site with {REPO.name} ...", file=sys.stderr)
        subprocess.run(_gallery(REPO, *crawl, "--gallery", gallery), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        image = next(p for p in sorted((Path(tmp) / "site").rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        sha = hashlib.sha256(image.read_bytes()).hexdigest()

        commands = {
            "python -c pass": lambda c: time_to_exit([sys.executable, "-c", "pass"], cwd=c),
            "gallery crawl (first request)": lambda c: time_to_first_request(
                _gallery(c, *crawl, "--gallery", str(Path(tmp) / f"crawl-{time.monotonic_ns()}")), cwd=c, site=site
            ),
            # The same without the render add-on, whose download handlers start Playwright's
            # driver before the first request: what that costs the start.
            "  the same, --render never": lambda c: time_to_first_request(
                _gallery(c, *crawl, "--render", "never", "--gallery", str(Path(tmp) / f"crawl-{time.monotonic_ns()}")), cwd=c, site=site
            ),
            "gallery search --hash": lambda c: time_to_exit(_gallery(c, "search", "--hash", f"sha256:{sha}", "--gallery", gallery), cwd=c),
            "gallery stats": lambda c: time_to_exit(_gallery(c, "stats", "--gallery", gallery), cwd=c),
        }
        times = {(name, c): [] for name in commands for c in checkouts}
        for run in range(args.runs):
            order = checkouts if run % 2 == 0 else checkouts[::-1]
            for name, measure in commands.items():
                for checkout in order:
                    times[name, checkout].append(measure(checkout))
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)

    print(f"seconds to first request or answer, median of {args.runs} (min-max), and the command's own CPU seconds; load {os.getloadavg()[0]:.1f}")
    header = f"{'command':<32}" + "".join(f"{str(c) + ' wall':>28}{'CPU':>7}" for c in checkouts)
    if len(checkouts) > 1:
        header += f"{'wall ratio first/last':>23}{'CPU ratio':>11}"
    print(header)
    for name in commands:
        row = f"{name:<32}"
        for c in checkouts:
            wall = [w for w, _ in times[name, c]]
            row += f"{statistics.median(wall):.2f} ({min(wall):.2f}-{max(wall):.2f})".rjust(28)
            row += f"{statistics.median(cpu for _, cpu in times[name, c]):>7.2f}"
        if len(checkouts) > 1:
            first, last = times[name, checkouts[0]], times[name, checkouts[-1]]
            for i, width in ((0, 23), (1, 11)):
                row += f"{statistics.median(t[i] for t in first) / statistics.median(t[i] for t in last):>{width}.2f}"
        print(row)


if __name__ == "__main__":
    main()
