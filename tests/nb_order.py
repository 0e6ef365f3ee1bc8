"""Run every notebook's tests in ONE process, one after another, in a chosen order.

`nbdev_test` reuses worker processes, so a notebook can depend on what an earlier one left behind
(a stream bound at import, an environment variable, torch's thread count). Running them all in one
process, in reversed or shuffled order, brings such dependencies out:

    python tests/nb_order.py --order reversed
    python tests/nb_order.py --order shuffled --seed 3
"""
import argparse, random, sys, time
from pathlib import Path

from fastcore.xtras import working_directory
from nbdev.config import get_config
from nbdev.test import test_nb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--order", choices=["sorted", "reversed", "shuffled"], default="reversed")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    cfg = get_config()
    files = sorted(Path(cfg.nbs_path).rglob("*.ipynb"))
    files = [f.absolute() for f in files if ".ipynb_checkpoints" not in f.parts and not f.name.startswith("_")]
    if a.order == "reversed": files.reverse()
    elif a.order == "shuffled": random.Random(a.seed).shuffle(files)
    failed = []
    with working_directory(cfg.nbs_path):
        for f in files:
            t0 = time.perf_counter()
            ok, _ = test_nb(f, skip_flags=cfg.tst_flags.split(), basepath=cfg.config_path)
            print(f"{'ok    ' if ok else 'FAILED'} {f.relative_to(cfg.config_path)} ({time.perf_counter() - t0:.0f} s)", flush=True)
            if not ok: failed.append(f.name)
    print(f"{len(files) - len(failed)} of {len(files)} notebooks passed in {a.order} order"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
