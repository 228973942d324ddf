#!/usr/bin/env python3
"""Rotation x restart x crash torture for dingtail (long; not part of `cargo test`).

A writer appends numbered lines (`ERROR block=B n=N`, BLOCK lines per block) at about RATE
lines/s, rotating the log with the real `logrotate` (create and copytruncate modes) and by `mv`,
in turn, while dingtail follows it and is signalled SIGNALS times (SIGTERM, or SIGKILL) and
started again. A local stand-in for DingTalk (loopback only) records every message; the `xN`
totals per block are compared with the lines that exist on disk at the end (all rotated files are
kept, uncompressed):

  lost       = lines on disk that no message counted (must be 0)
  duplicated = lines counted more than once (0 after SIGTERM; allowed after SIGKILL)
  gap        = lines the writer wrote that exist on no file: copytruncate's inherent gap
               (written between logrotate's copy and its truncation), not dingtail's doing

Usage:
  bench/torture.py                      # the four rows: {TERM, KILL} x {no rotation, rotations}
  bench/torture.py --signals 12 --rows term-rot
  DINGTAIL=target/release/dingtail bench/torture.py

`logrotate` must be installed (`apt-get install -y logrotate`).
"""

import argparse
import collections
import http.server
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HEADER = re.compile(r"^【err】×(\d+) .*block=(\d+)")


class Robot:
    """A DingTalk stand-in on 127.0.0.1: answers errcode 0, keeps the message texts."""

    def __init__(self):
        self.texts = []
        self.lock = threading.Lock()
        robot = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = (body.get("text") or {}).get("content") or (body.get("markdown") or {}).get("text", "")
                with robot.lock:
                    robot.texts.append(text)
                reply = b'{"errcode":0,"errmsg":"ok"}'
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # dingtail was killed before it read the answer; the message was posted

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self):
        return "http://127.0.0.1:%d/robot/send?access_token=tok-torture0123456789" % self.server.server_address[1]

    def per_block(self):
        got = collections.Counter()
        with self.lock:
            texts = list(self.texts)
        for t in texts:
            for line in t.splitlines():
                m = HEADER.match(line)
                if m:
                    got[int(m.group(2))] += int(m.group(1))
        return got


class Writer(threading.Thread):
    """Appends lines at `rate`/s, one write per line; reopens the log a few lines after it was
    renamed away (as a logger that notices late), so some lines still go to the old file."""

    def __init__(self, log, rate, seconds, block):
        super().__init__(daemon=True)
        self.log, self.rate, self.seconds, self.block = log, rate, seconds, block
        self.written = collections.Counter()

    def run(self):
        f = open(self.log, "a")
        n, start, reopen_in = 0, time.monotonic(), None
        while time.monotonic() - start < self.seconds:
            for _ in range(self.rate // 100):
                b = n // self.block
                f.write("ERROR block=%05d n=%07d %s\n" % (b, n, "x" * 60))
                f.flush()
                self.written[b] += 1
                n += 1
                if reopen_in is not None:
                    reopen_in -= 1
                    if reopen_in == 0:
                        f.close()
                        f, reopen_in = open(self.log, "a"), None
                elif n % 50 == 0:
                    try:
                        if os.stat(self.log).st_ino != os.fstat(f.fileno()).st_ino:
                            reopen_in = 5
                    except FileNotFoundError:
                        reopen_in = 5
            time.sleep(max(0.0, start + n / self.rate - time.monotonic()))
        f.close()


class Rotator(threading.Thread):
    """Every few seconds: logrotate (create), logrotate (copytruncate), mv, in turn."""

    def __init__(self, logdir, log, until):
        super().__init__(daemon=True)
        self.logdir, self.log, self.until = logdir, log, until
        self.done = collections.Counter()

    def logrotate(self, mode):
        conf = os.path.join(self.logdir, "..", "logrotate-%s.conf" % mode)
        with open(conf, "w") as c:
            c.write("%s {\n  rotate 100000\n  nocompress\n  missingok\n  %s\n}\n" % (self.log, mode))
        state = os.path.join(self.logdir, "..", "logrotate.state")
        subprocess.run(["logrotate", "-f", "-s", state, conf], check=True)

    def run(self):
        k = 0
        while time.monotonic() < self.until:
            time.sleep(random.uniform(3.0, 6.0))
            if time.monotonic() >= self.until:
                break
            mode = ["create", "copytruncate", "mv"][k % 3]
            if mode == "mv":
                os.rename(self.log, "%s.mv%03d" % (self.log, k))
            else:
                self.logrotate(mode)
            self.done[mode] += 1
            k += 1


def on_disk(logdir, block):
    """Lines per block in every file of the log directory."""
    got = collections.Counter()
    for name in os.listdir(logdir):
        with open(os.path.join(logdir, name), "rb") as f:
            for line in f:
                m = re.match(rb"ERROR block=(\d+) ", line)
                if m and line.endswith(b"\n"):
                    got[int(m.group(1))] += 1
    return got


def row(binary, sig, rotate, signals, rate, block):
    work = tempfile.mkdtemp(prefix="dingtail-torture-")
    logdir = os.path.join(work, "logs")
    os.mkdir(logdir)
    log = os.path.join(logdir, "app.log")
    open(log, "w").close()
    robot = Robot()
    config = os.path.join(work, "rules.yaml")
    with open(config, "w") as c:
        c.write(
            "robots:\n  ops:\n    webhook: \"%s\"\n    rate: 1000/1s\n"
            "defaults:\n  window: 1s\n  max_lines: 1\n"
            "rules:\n  - name: err\n    match: 'ERROR block=(?P<block>\\d+)'\n    group_by: [block]\n" % robot.url()
        )
    state = os.path.join(work, "state")
    args = [binary, "run", "-c", config, "--state-dir", state, os.path.join(logdir, "app.log*")]
    env = dict(os.environ, DINGTAIL_LOG="warn")
    checkpoints = os.path.join(state, "checkpoints.json")

    def start():
        before = os.stat(checkpoints).st_ino if os.path.exists(checkpoints) else None
        p = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.monotonic()
        while (os.stat(checkpoints).st_ino if os.path.exists(checkpoints) else None) == before:
            if p.poll() is not None or time.monotonic() - t0 > 60:
                sys.exit("dingtail did not start: %s" % p.stderr.read().decode(errors="replace"))
            time.sleep(0.01)
        return p

    def stop(p, s):
        p.send_signal(s)
        err = p.stderr.read().decode(errors="replace")
        code = p.wait()
        if s == signal.SIGTERM and code != 0:
            sys.exit("dingtail exited %d after SIGTERM:\n%s" % (code, err))

    first = start()
    stop(first, signal.SIGTERM)
    # the signals are spread over the writer's time: 2 s per signal on average
    seconds = signals * 2.0
    writer = Writer(log, rate, seconds, block)
    rotator = Rotator(logdir, log, time.monotonic() + seconds) if rotate else None
    writer.start()
    if rotator:
        rotator.start()
    sent = 0
    while sent < signals:
        p = start()
        time.sleep(random.uniform(0.5, 3.0))  # chaos: the signal lands wherever the run is
        stop(p, sig)
        sent += 1
    writer.join()
    if rotator:
        rotator.join()
    # a last run reads what is left and delivers it; done when the totals stop moving
    p = start()
    disk = on_disk(logdir, block)
    last, still = None, 0
    while still < 10:
        time.sleep(1)
        got = robot.per_block()
        complete = all(got[b] >= n for b, n in disk.items())
        still = still + 1 if (got == last or complete) else 0
        last = got
        if complete and still >= 3:
            break
    stop(p, signal.SIGTERM)
    got = robot.per_block()
    written = sum(writer.written.values())
    gap = sum(writer.written[b] - disk[b] for b in writer.written)
    lost = sum(max(0, disk[b] - got[b]) for b in disk)
    dup = sum(max(0, got[b] - disk[b]) for b in got)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "written": written,
        "on_disk": sum(disk.values()),
        "gap": gap,
        "lost": lost,
        "duplicated": dup,
        "rotations": dict(rotator.done) if rotator else {},
        "signals": sent,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--signals", type=int, default=36)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--block", type=int, default=1000)
    ap.add_argument("--rows", default="term-norot,kill-norot,term-rot,kill-rot")
    a = ap.parse_args()
    binary = os.environ.get("DINGTAIL") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "target"), "debug", "dingtail")
    if not shutil.which("logrotate"):
        sys.exit("logrotate is not installed: apt-get install -y logrotate")
    print("| run | lines written | signals | rotations | lost | duplicated | copytruncate gap |")
    print("|---|---|---|---|---|---|---|")
    for name in a.rows.split(","):
        sig = signal.SIGTERM if name.startswith("term") else signal.SIGKILL
        rotate = name.endswith("-rot")
        r = row(binary, sig, rotate, a.signals, a.rate, a.block)
        rot = ", ".join("%s %d" % kv for kv in sorted(r["rotations"].items())) or "none"
        print("| %s, %s | %d | %d | %s | %d | %d | %d |" % (
            "SIGTERM" if sig == signal.SIGTERM else "SIGKILL",
            "rotations" if rotate else "no rotation",
            r["written"], r["signals"], rot, r["lost"], r["duplicated"], r["gap"]), flush=True)


if __name__ == "__main__":
    main()
