#!/usr/bin/env python3
"""Memory while DingTalk is down (long; not part of `cargo test`).

dingtail follows a file that gets MATCHING lines/s (rule `err`, grouped by one of 20 hosts) while
its robot's address refuses every connection (an outage: every send fails and is retried, alerts
merge while they wait). The process's high-water mark (VmHWM) is read from /proc every second;
the growth from WARMUP seconds in to the end (MINUTES of outage later) must stay within LIMIT
MiB, else the exit status is 1.

  bench/memory.py                     # 4 minutes at 1,000 matching lines/s, limit 2 MiB
  bench/memory.py --minutes 1         # shorter
  DINGTAIL=target/release/dingtail bench/memory.py
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


def vm(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--warmup", type=float, default=30.0)
    ap.add_argument("--limit-mib", type=float, default=2.0)
    a = ap.parse_args()
    binary = os.environ.get("DINGTAIL") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "target"), "debug", "dingtail")
    work = tempfile.mkdtemp(prefix="dingtail-memory-")
    # a loopback port with nobody listening: every POST is refused, as in an outage
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    config = os.path.join(work, "rules.yaml")
    with open(config, "w") as c:
        c.write(
            "robots:\n  ops:\n    webhook: \"http://127.0.0.1:%d/robot/send?access_token=tok-memory0123456789\"\n"
            "rules:\n  - name: err\n    match: 'ERROR host=(?P<host>\\S+)'\n    group_by: [host]\n"
            "    window: 1s\n" % port
        )
    log = os.path.join(work, "app.log")
    open(log, "w").close()
    err = open(os.path.join(work, "stderr"), "w+")
    p = subprocess.Popen(
        [binary, "run", "-c", config, "--shutdown-timeout", "1s",
         "--state-dir", os.path.join(work, "state"), log],
        env=dict(os.environ, DINGTAIL_LOG="warn"), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=err)
    written = [0]
    total = a.warmup + a.minutes * 60
    stop = threading.Event()

    def write():
        n, start = 0, time.monotonic()
        with open(log, "a") as f:
            while not stop.is_set():
                for _ in range(a.rate // 100):
                    f.write("2026-01-01 ERROR host=web-%02d request %d failed %s\n" % (n % 20, n, "x" * 40))
                    f.flush()
                    n += 1
                written[0] = n
                time.sleep(max(0.0, start + n / a.rate - time.monotonic()))

    threading.Thread(target=write, daemon=True).start()
    start = time.monotonic()
    base = None
    samples = []
    while time.monotonic() - start < total:
        time.sleep(1)
        t = time.monotonic() - start
        hwm, rss = vm(p.pid, "VmHWM"), vm(p.pid, "VmRSS")
        samples.append((t, hwm, rss))
        if base is None and t >= a.warmup:
            base = hwm
        if int(t) % 30 == 0:
            print("t=%4.0fs VmHWM %6d KiB VmRSS %6d KiB" % (t, hwm, rss), flush=True)
    stop.set()
    end = samples[-1][1]
    p.send_signal(signal.SIGTERM)
    p.wait()
    err.seek(0)
    lines = err.read().splitlines()
    summary = [l for l in lines if l.startswith("dingtail: read")]
    print("lines written: %d; %s" % (written[0], summary[-1] if summary else "no summary"))
    print("warnings logged: %d (e.g. %s)" % (
        sum(" WARN " in l for l in lines), next((l for l in lines if " WARN " in l), "none")[:160]))
    growth = (end - base) / 1024
    print("VmHWM at %.0f s: %d KiB; after %.1f more minutes of outage: %d KiB; growth %.2f MiB (limit %.1f)"
          % (a.warmup, base, a.minutes, end, growth, a.limit_mib))
    sys.exit(0 if growth <= a.limit_mib else 1)


if __name__ == "__main__":
    main()
