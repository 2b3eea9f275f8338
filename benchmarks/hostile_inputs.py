"""Hostile inputs: peak RSS and wall time of reading each one (issue 18, item 3).

Each case runs in a fresh subprocess (its peak RSS, VmHWM, is that case's own): `PageReader`
over one hostile file, with render=True (what the neural encoder gets) and render=False (what
the lexical encoder gets), then the whole hostile dir (every hostile file next to the good
test files) through the reader and through `vsplade index --model lexical --engine memory`.
The files are the ones tests/core/test_hostile_inputs.py generates. Prints a markdown table.

    .venv/bin/python benchmarks/hostile_inputs.py [--cases bomb.png,huge-page.pdf,...] [--pages-from OLD.py]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "core"))

from test_hostile_inputs import PEAK_RSS, make_hostile_dir, write_png  # noqa: E402

# --pages-from FILE: the children read with that pages.py instead (e.g. the code before a fix:
# `git show REV:vsplade/pages.py > /tmp/old_pages.py`), swapped in before anything uses it.
SWAP = r"""
import importlib.util, os, sys
if os.environ.get("BENCH_PAGES_FROM"):
    import vsplade
    spec = importlib.util.spec_from_file_location("vsplade.pages", os.environ["BENCH_PAGES_FROM"])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["vsplade.pages"] = vsplade.pages = mod
    spec.loader.exec_module(mod)
"""

READER = SWAP + PEAK_RSS + r"""
import json, sys, time
t = time.perf_counter()
from vsplade.pages import PageReader
reader = PageReader([sys.argv[1]], render=sys.argv[2] == "render")
n = sum(1 for _ in reader)
print(json.dumps({"pages": n, "failures": len(reader.failures), "warnings": len(getattr(reader, "warnings", [])),
                  "s": time.perf_counter() - t,
                  "maxrss_mb": peak_rss_kb() / 1024}))
"""

CLI = SWAP + PEAK_RSS + r"""
import atexit, os, runpy, sys
atexit.register(lambda: open(os.environ["RSS_OUT"], "w").write(str(peak_rss_kb())))
sys.argv[0] = "vsplade"
runpy.run_module("vsplade", run_name="__main__", alter_sys=True)
"""


ALL_LABEL = "hostile dir: bomb, huge page, 16-bit, TIFF, corrupt, truncated + 4 good files"


def run_reader(path: Path, mode: str) -> dict:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", READER, str(path), mode], capture_output=True, text=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - t
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        return {"result": f"crashed: {last[:90]}", "wall": wall, "maxrss_mb": None}
    out = json.loads(r.stdout)
    out["result"] = f"{out['pages']} pages, {out['failures']} failed, {out['warnings']} warnings"
    out["wall"] = wall
    return out


def run_cli(d: Path, work: Path) -> dict:
    rss = work / "rss"
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", CLI, "index", str(d), "--model", "lexical", "--engine", "memory",
                        "--index", str(work / "ix"), "--json"], capture_output=True, text=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "RSS_OUT": str(rss)})
    wall = time.perf_counter() - t
    tb = "Traceback" in r.stderr
    try:
        s = json.loads(r.stdout.strip().splitlines()[-1])
        res = f"exit {r.returncode}, {s.get('indexed')} indexed, {len(s.get('input_failures', []))} failed"
    except (ValueError, IndexError):
        last = (r.stderr.strip().splitlines() or [""])[-1]
        res = f"exit {r.returncode}" + (", traceback" if tb else "") + (f": {last[:60]}" if last else "")
    return {"result": res, "wall": wall, "maxrss_mb": int(rss.read_text()) / 1024 if rss.exists() else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="bomb.png,huge-page.pdf,big-rgb.png,big.jpg,gray16.png,multipage.tiff,corrupt.png,"
                                       "truncated.png,ALL,CLI")
    ap.add_argument("--pages-from", help="read with this pages.py instead of vsplade's (a before/after comparison)")
    args = ap.parse_args()
    if args.pages_from:
        os.environ["BENCH_PAGES_FROM"] = str(Path(args.pages_from).resolve())
    cases = args.cases.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        d = tmp / "hostile"
        make_hostile_dir(d)
        extra = tmp / "extra"
        extra.mkdir()
        # a valid 8000 x 8000 RGB PNG: 0.2 MB on disk, 192 MB of pixels (under the decode limit)
        write_png(extra / "big-rgb.png", 8000, 8000, color_type=2, fill=200)
        # a 12000 x 9000 JPEG (108 Mpx: over Pillow's bomb warning, under its error)
        from PIL import Image

        Image.new("RGB", (12000, 9000), (200, 120, 40)).save(extra / "big.jpg", quality=90)
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
              f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; python {platform.python_version()}")
        print()
        print("| input | file size | mode | result | peak RSS MB | wall s |")
        print("|---|---|---|---|---|---|")
        for case in cases:
            if case == "CLI":
                r = run_cli(d, tmp)
                rows = [(ALL_LABEL, "-", "`vsplade index --model lexical`", r)]
            else:
                path = d if case == "ALL" else (extra / case if (extra / case).exists() else d / case)
                size = "-" if case == "ALL" else f"{path.stat().st_size / 1024:.1f} KB"
                label = ALL_LABEL if case == "ALL" else case
                rows = [(label, size, mode, run_reader(path, mode)) for mode in ("render", "no-render")]
            for label, size, mode, r in rows:
                rss = "-" if r["maxrss_mb"] is None else f"{r['maxrss_mb']:.0f}"
                print(f"| {label} | {size} | {mode} | {r['result']} | {rss} | {r['wall']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
