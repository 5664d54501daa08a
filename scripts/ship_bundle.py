"""Export the default bundle afresh and ship it with the install (edge_variator/default/bundles/).

    python scripts/ship_bundle.py
    python scripts/ship_bundle.py --slender models/mr/quarter   # make that model the default first

Run after the default weights (edge_variator/default/mr_slender, its plugins or thresholds) or the
export change: the bundle's folder name carries its export_key (a hash of everything it is made
from), so a stale bundle is never used, and tests/test_cli.py fails until the new one is shipped.
Exporting takes about 8 minutes on 2 cores; the shipped copy is what lets `edge-variator demo` run
in about a minute and a half from a fresh install. `pytest -m slow tests/test_cli.py` checks that a
fresh export computes what it does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from edge_variator.defaults import SHIPPED_BUNDLES, SHIPPED_SLENDER, default_bundle
from edge_variator.exits import load_multi_exit
from edge_variator.files import atomic_directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--slender", type=Path, help="a multi-exit mr checkpoint with plugins/ inside "
                        "(scripts/train_all.py's models/mr/quarter) to copy in as the default first")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.slender:
        _, _, info = load_multi_exit(args.slender)  # refuses what is not a multi-exit checkpoint
        if info.labels != ["negative", "positive"] or not (args.slender / "plugins").is_dir():
            raise SystemExit(f"{args.slender} is not an mr multi-exit model with its plugins/")
        with atomic_directory(SHIPPED_SLENDER) as tmp:
            shutil.copytree(args.slender, tmp, dirs_exist_ok=True)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["EDGE_VARIATOR_BUNDLES"] = cache
        fresh, _ = default_bundle(rebuild=True)
        with atomic_directory(SHIPPED_BUNDLES) as tmp:
            shutil.copytree(fresh, tmp / fresh.name)
    size = sum(f.stat().st_size for f in (SHIPPED_BUNDLES / fresh.name).rglob("*") if f.is_file())
    print(f"shipped {SHIPPED_BUNDLES / fresh.name} ({size / 1e6:.1f} MB) in "
          f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
