"""Peak driver memory of `protect` for 5k vs 50k images: it should stay flat.

    python benchmarks/unlearnable_memory.py [--sizes 5000,50000]

Each size runs in a fresh process (its own local Ray) on synthetic 16×16×3 images
generated on Ray workers: one round, one PGD step, the tiny surrogate, written to disk.
A sampling thread records the driver's resident memory (RSS) every 50 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

CHILD = textwrap.dedent("""
    import json, sys, threading, time, psutil
    sys.path.insert(0, sys.argv[3])
    from common import synthetic_corpus
    from raypriv.runtime import ResourceSpec, init_ray
    from raypriv.unlearnable import UnlearnableConfig, protect
    proc = psutil.Process(); peak = [0]; stop = threading.Event()
    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss); time.sleep(0.05)
    init_ray(num_cpus=4)
    threading.Thread(target=sample, daemon=True).start()
    time.sleep(0.2); base = proc.memory_info().rss
    n = int(sys.argv[1]); t0 = time.time()
    corpus = synthetic_corpus(n, size=16)
    cfg = UnlearnableConfig(mode="samplewise", surrogate="tiny_cnn", pgd_steps=1, train_steps=2, max_rounds=1,
                            stop_accuracy=1.0, pgd_batch_size=1024, train_batch_size=256)
    protect(corpus, output=sys.argv[2], config=cfg, resources=ResourceSpec(workers=2), progress=lambda m: None)
    stop.set()
    print(json.dumps({"n": n, "driver_rss_after_init_mb": base / 2**20, "driver_peak_rss_mb": peak[0] / 2**20,
                      "seconds": time.time() - t0}))
""")


def main(args) -> list[dict]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import save_result

    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run([sys.executable, "-c", CHILD, str(n), os.path.join(tmp, "out"),
                                   os.path.dirname(os.path.abspath(__file__))], capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-3000:])
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"{n:>7,} images: driver peak RSS {r['driver_peak_rss_mb']:7.1f} MiB "
                  f"(after ray.init {r['driver_rss_after_init_mb']:.1f} MiB), {r['seconds']:.0f}s", flush=True)
    if len(rows) >= 2:
        print(f"peak ratio {rows[-1]['n']:,} vs {rows[0]['n']:,} images: "
              f"{rows[-1]['driver_peak_rss_mb'] / rows[0]['driver_peak_rss_mb']:.2f}x")
    print(f"results: {save_result('unlearnable_memory', {'rows': rows})}")
    return rows


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="5000,50000")
    main(p.parse_args())
