#!/usr/bin/env python3
"""Writes a deterministic, realistic mixed log corpus for dingtail's benchmarks.

    bench/gen_corpus.py OUT SIZE_MIB [--seed S]

The corpus interleaves, as a log shipper or `tail -F a b c` would:
  - nginx "combined" access lines (~40% of events), mostly 2xx/3xx, some 4xx, few 5xx, scanners;
  - Java/Spring Boot lines (~25%), with WARN/ERROR and occasional multi-line stack traces;
  - syslog lines (~17%): sshd (logins, brute force), kernel (links, UFW, rare OOM/segfault),
    systemd and CRON;
  - Kubernetes-style JSON lines (~18%) with levels, trace ids and pod metadata.

Speed: building every line with Python string formatting runs at a few MB/s, too slow for
1 GiB. Instead, for each "epoch" (32 MiB of output, 5 minutes of log time) a pool of 30,000 varied
events is generated once and sorted by time; the epoch is then written in blocks of 1,024 events
drawn (with replacement) by a seeded PRNG from a window of the pool that moves forward with the
output, so time advances through the file. Each epoch is seeded from (seed, epoch number) alone,
so a smaller corpus is a byte-exact prefix of a larger one with the same seed. The output is cut
at a line end at exactly SIZE_MIB MiB or just below.

No third-party packages; Python 3.8+.
"""

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vocab as V  # noqa: E402

EPOCH_BYTES = 32 << 20
EPOCH_SECONDS = 300
POOL = 30_000
WINDOW = 3_000
BLOCK_EVENTS = 1_024
T0 = 1_795_830_000  # 2026-11-28 09:40 +0800, near examples/sample.log
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
TZ = 8 * 3600


def weighted(rng, table):
    """table: list of (weight, value); returns a value."""
    r = rng.random() * table[-1][0]
    for cum, value in table:
        if r < cum:
            return value
    return table[-1][1]


def cumulative(pairs):
    out, acc = [], 0.0
    for w, v in pairs:
        acc += w
        out.append((acc, v))
    return out


STATUS = cumulative([(80, 200), (3, 201), (3, 204), (1, 301), (2, 302), (5, 304), (1, 400), (1, 401),
                     (0.5, 403), (2.5, 404), (0.15, 429), (0.1, 499), (0.2, 500), (0.15, 502),
                     (0.1, 503), (0.1, 504)])
JAVA_LEVEL = cumulative([(89, "INFO"), (6, "DEBUG"), (4, "WARN"), (1, "ERROR")])
JSON_LEVEL = cumulative([(5, "debug"), (88.5, "info"), (5, "warn"), (1.5, "error")])
KIND = cumulative([(40, "nginx"), (25, "java"), (17, "syslog"), (18, "json")])


class Clock:
    """Civil-time formatting without datetime (which is slow in a hot loop): caches per second."""

    def __init__(self):
        self.cache = {}

    def parts(self, t):
        sec = int(t)
        p = self.cache.get(sec)
        if p is None:
            tm = time.gmtime(sec + TZ)
            p = (tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)
            self.cache[sec] = p
        return p

    def nginx(self, t):
        y, mo, d, h, mi, s = self.parts(t)
        return f"{d:02d}/{MONTHS[mo - 1]}/{y}:{h:02d}:{mi:02d}:{s:02d} +0800"

    def spring(self, t):
        y, mo, d, h, mi, s = self.parts(t)
        return f"{y}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}.{int(t * 1000) % 1000:03d}"

    def syslog(self, t):
        y, mo, d, h, mi, s = self.parts(t)
        return f"{MONTHS[mo - 1]} {d:2d} {h:02d}:{mi:02d}:{s:02d}"

    def iso_utc(self, t):
        y, mo, d, h, mi, s = self.parts(t - TZ)
        return f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{int(t * 1000) % 1000:03d}Z"


def fill(rng, template):
    if "{" not in template:
        return template
    return (template.replace("{id}", str(rng.randrange(10_000, 999_999)))
            .replace("{hash}", f"{rng.getrandbits(32):08x}")
            .replace("{ip}", rng.choice(V.CLIENT_IPS))
            .replace("{n}", str(rng.randrange(20, 900))))


def nginx(rng, clk, t):
    r = rng.random()
    if r < 0.004:  # scanners
        ip, path, ua = rng.choice(V.ATTACKER_IPS), rng.choice(V.SCANNER_PATHS), rng.choice(V.BAD_AGENTS)
        status, method = rng.choice([404, 404, 404, 403, 400, 301]), rng.choice(["GET", "GET", "POST", "HEAD"])
    else:
        ip, path, ua = rng.choice(V.CLIENT_IPS), fill(rng, rng.choice(V.API_PATHS)), rng.choice(V.USER_AGENTS)
        status = weighted(rng, STATUS)
        method = "GET" if rng.random() < 0.7 else rng.choice(["POST", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
        if path == "/api/v2/search":
            path += f"?q={rng.choice(['shoes', 'iphone+case', 'tea', 'desk+lamp', '%E8%8C%B6'])}&page={rng.randrange(1, 9)}"
    user = "-" if rng.random() < 0.97 else rng.choice(V.USERS)
    size = 0 if status in (204, 304) else rng.randrange(120, 60_000)
    rt = rng.random() ** 3 * (30 if status >= 500 else 2.0)
    ref = "-" if rng.random() < 0.8 else f"https://shop.example.com{rng.choice(['/', '/cart', '/products', '/checkout'])}"
    return (f'{ip} - {user} [{clk.nginx(t)}] "{method} {path} HTTP/1.1" {status} {size} '
            f'"{ref}" "{ua}" {rt:.3f}\n')


def stack_trace(rng, exc, msg):
    lines = [f"{exc}: {msg}"]
    for _ in range(rng.randrange(4, 14)):
        lines.append("\tat " + fill(rng, rng.choice(V.STACK_FRAMES)))
    if rng.random() < 0.5:
        cause, cmsgs = rng.choice(V.EXCEPTIONS)
        lines.append(f"Caused by: {cause}: {fill(rng, rng.choice(cmsgs))}")
        for _ in range(rng.randrange(2, 6)):
            lines.append("\tat " + fill(rng, rng.choice(V.STACK_FRAMES)))
        lines.append(f"\t... {rng.randrange(10, 90)} common frames omitted")
    return "\n".join(lines) + "\n"


JAVA_INFO = [
    "order {id} created for user {uid}", "cart {id} updated: {k} item(s)", "payment {id} authorized in {ms} ms",
    "Completed initialization in {ms} ms", "stock reserved for order {id}", "user {uid} logged in from {ip}",
    "Fetching config from server at : http://config-server:8888", "HikariPool-1 - Pool stats (total=20, active={k}, idle={k2}, waiting=0)",
    "[Consumer clientId=consumer-orders-1, groupId=orders] Setting offset for partition orders-{k} to the committed offset",
    "Refund {id} processed", "Scheduled job inventory-sync finished in {ms} ms",
]
JAVA_DEBUG = ["Mapped to com.example.shop.order.OrderController#get(Long)", "Completed 200 OK",
              "select o1_0.id,o1_0.status from orders o1_0 where o1_0.id=?", "Cache hit for product {id}"]
JAVA_WARN = [
    "HikariPool-1 - Thread starvation or clock leap detected (housekeeper delta=1m3s).",
    "Slow query ({ms} ms): select * from order_items where order_id=?",
    "Retrying call to inventory-service (attempt {k}/3)", "Stock for sku {id} is low: {k} left",
    "SQL Error: 0, SQLState: 08001", "CircuitBreaker 'inventory' changed state from CLOSED to OPEN",
    "[Producer clientId=producer-1] Connection to node 2 (kafka-2/{ip}:9092) could not be established. Broker may not be available.",
]
JAVA_ERROR = [
    "Failed to process order {id}", "Payment capture failed for order {id}: gateway returned 502",
    "Servlet.service() for servlet [dispatcherServlet] in context with path [] threw exception",
    "Unexpected error occurred in scheduled task", "HikariPool-1 - Connection is not available, request timed out after 30000ms.",
    "Error while fetching metadata with correlation id {k} : {orders=LEADER_NOT_AVAILABLE}",
]


def java(rng, clk, t):
    level = weighted(rng, JAVA_LEVEL)
    table = {"INFO": JAVA_INFO, "DEBUG": JAVA_DEBUG, "WARN": JAVA_WARN, "ERROR": JAVA_ERROR}[level]
    msg = (fill(rng, rng.choice(table)).replace("{uid}", str(rng.randrange(1000, 99999)))
           .replace("{ms}", str(rng.randrange(1, 5000))).replace("{k2}", str(rng.randrange(0, 20)))
           .replace("{k}", str(rng.randrange(1, 12))))
    logger = rng.choice(V.JAVA_LOGGERS)
    line = (f"{clk.spring(t)} {level:>5} 1 --- [{rng.choice(V.JAVA_THREADS):>15}] "
            f"{logger:<40} : {msg}\n")
    if level == "ERROR" and rng.random() < 0.6:
        exc, msgs = rng.choice(V.EXCEPTIONS)
        line += stack_trace(rng, exc, fill(rng, rng.choice(msgs)))
    elif level == "WARN" and rng.random() < 0.05:
        exc, msgs = rng.choice(V.EXCEPTIONS)
        line += stack_trace(rng, exc, fill(rng, rng.choice(msgs)))
    return line


def syslog(rng, clk, t):
    host = rng.choice(V.HOSTS)
    head = f"{clk.syslog(t)} {host} "
    r = rng.random()
    pid = rng.randrange(300, 65000)
    if r < 0.40:  # sshd
        s = rng.random()
        if s < 0.80:  # the team logging in
            ip, user = rng.choice(V.CLIENT_IPS[:1500]), rng.choice(V.USERS)
            body = rng.choice([
                f"Accepted publickey for {user} from {ip} port {rng.randrange(1024, 65535)} ssh2: ED25519 SHA256:{rng.getrandbits(64):016x}",
                f"pam_unix(sshd:session): session opened for user {user}(uid={rng.randrange(1000, 1100)}) by (uid=0)",
                f"pam_unix(sshd:session): session closed for user {user}",
                f"Received disconnect from {ip} port {rng.randrange(1024, 65535)}:11: disconnected by user",
            ])
        else:
            ip, user = rng.choice(V.ATTACKER_IPS), rng.choice(V.BAD_USERS)
            port = rng.randrange(1024, 65535)
            body = rng.choice([
                f"Invalid user {user} from {ip} port {port}",
                f"Invalid user {user} from {ip} port {port}",
                f"Connection closed by authenticating user root {ip} port {port} [preauth]",
                f"Failed password for invalid user {user} from {ip} port {port} ssh2",
                f"Failed password for root from {ip} port {port} ssh2",
                f"Connection closed by invalid user {user} {ip} port {port} [preauth]",
                f"Disconnected from invalid user {user} {ip} port {port} [preauth]",
                f"Received disconnect from {ip} port {port}:11: Bye Bye [preauth]",
                f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}",
                f"error: maximum authentication attempts exceeded for root from {ip} port {port} ssh2 [preauth]",
                f"Connection reset by {ip} port {port} [preauth]",
            ])
        return f"{head}sshd[{pid}]: {body}\n"
    if r < 0.62:  # kernel
        up = f"[{rng.randrange(10_000, 9_999_999)}.{rng.randrange(0, 999_999):06d}]"
        s = rng.random()
        if s < 0.55:
            src, dst = rng.choice(V.ATTACKER_IPS), rng.choice(V.CLIENT_IPS[:1500])
            body = (f"[UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC={src} DST={dst} "
                    f"LEN=44 TOS=0x00 PREC=0x00 TTL=242 ID={rng.randrange(1, 65535)} PROTO=TCP SPT={rng.randrange(1024, 65535)} "
                    f"DPT={rng.choice([22, 23, 3389, 5432, 6379, 8080, 9200])} WINDOW=1024 RES=0x00 SYN URGP=0")
        elif s < 0.97:
            body = rng.choice(["eth0: Link is Up - 10Gbps/Full - flow control off", "IPv6: ADDRCONF(NETDEV_CHANGE): veth3a1b2c: link becomes ready",
                               "cni0: port 3(veth3a1b2c) entered forwarding state", "audit: type=1400 audit(1795830000.123:456): apparmor=\"STATUS\" operation=\"profile_replace\"",
                               "EXT4-fs (nvme0n1p1): mounted filesystem with ordered data mode. Quota mode: none."])
        elif s < 0.995:
            body = rng.choice(["TCP: request_sock_TCP: Possible SYN flooding on port 443. Sending cookies.  Check SNMP counters.",
                               "nf_conntrack: nf_conntrack: table full, dropping packet",
                               "perf: interrupt took too long (2503 > 2500), lowering kernel.perf_event_max_sample_rate to 79750",
                               "eth0: Link is Down", "NETDEV WATCHDOG: eth0 (ena): transmit queue 2 timed out"])
        else:
            p = rng.randrange(1000, 60000)
            body = rng.choice([f"java invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0",
                               f"Out of memory: Killed process {p} (java) total-vm:8388608kB, anon-rss:4128768kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:9000kB oom_score_adj:0",
                               f"node[{p}]: segfault at 0 ip 00007f3a1c2b4e50 sp 00007ffd5e4c3a18 error 4 in libc.so.6[7f3a1c200000+195000]",
                               "EXT4-fs error (device nvme1n1): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0",
                               "blk_update_request: I/O error, dev sdb, sector 123456 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0"])
        return f"{head}kernel: {up} {body}\n"
    if r < 0.90:  # systemd
        s = rng.random()
        if s < 0.96:
            body = rng.choice([f"Started Session {rng.randrange(100, 9999)} of User {rng.choice(V.USERS)}.",
                               f"session-{rng.randrange(100, 9999)}.scope: Deactivated successfully.",
                               "Starting Daily apt download activities...", "Finished Daily apt download activities.",
                               "Starting Cleanup of Temporary Directories...", "logrotate.service: Deactivated successfully.",
                               "Reloading The nginx HTTP and reverse proxy server...", "Started Time & Date Service.",
                               f"run-containerd-runc-k8s.io-{rng.getrandbits(48):012x}-runc.abc.mount: Deactivated successfully."])
        else:
            svc = rng.choice(["nginx", "docker", "kubelet", "node-exporter", "postgresql@15-main", "redis-server"])
            body = rng.choice([f"{svc}.service: Main process exited, code=exited, status=1/FAILURE",
                               f"{svc}.service: Failed with result 'exit-code'.",
                               f"Failed to start {svc}.service - {svc} daemon.",
                               f"{svc}.service: Scheduled restart job, restart counter is at {rng.randrange(1, 9)}.",
                               f"{svc}.service: Watchdog timeout (limit 3min)!"])
        return f"{head}systemd[1]: {body}\n"
    user = rng.choice(["root", "backup", "www-data"])
    body = rng.choice(["(root) CMD (   cd / && run-parts --report /etc/cron.hourly)", f"({user}) CMD (/usr/local/bin/backup.sh >/dev/null 2>&1)",
                       "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)", "pam_unix(cron:session): session closed for user root"])
    return f"{head}CRON[{pid}]: {body}\n"


def json_line(rng, clk, t):
    level = weighted(rng, JSON_LEVEL)
    svc = rng.choice(V.SERVICES)
    ns = rng.choice(V.NAMESPACES)
    pod = f"{svc}-{rng.getrandbits(36):09x}-{rng.getrandbits(20):05x}"
    trace = f"{rng.getrandbits(128):032x}"
    path = fill(rng, rng.choice(V.API_PATHS[:22]))
    if level == "error":
        msg = fill(rng, rng.choice(V.JSON_ERRORS))
        extra = f',"error":"{msg}","stacktrace":"main.(*Server).handle\\n\\t/app/server.go:{rng.randrange(50, 400)}"'
        msg = "request failed" if rng.random() < 0.5 else msg
    elif level == "warn":
        msg = rng.choice(V.JSON_WARNS)
        extra = f',"duration_ms":{rng.randrange(1000, 30000)}'
    else:
        msg = rng.choice(V.JSON_INFOS)
        extra = f',"duration_ms":{rng.random() * 200:.1f}'
    status = 500 if level == "error" else rng.choice([200, 200, 200, 201, 204, 404])
    return (f'{{"ts":"{clk.iso_utc(t)}","level":"{level}","logger":"{svc}.http","msg":"{msg}",'
            f'"method":"{rng.choice(["GET", "GET", "POST", "PUT"])}","path":"{path}","status":{status}{extra},'
            f'"trace_id":"{trace}","k8s":{{"namespace":"{ns}","pod":"{pod}","container":"{svc}",'
            f'"node":"{rng.choice(V.NODES)}"}}}}\n')


GENERATORS = {"nginx": nginx, "java": java, "syslog": syslog, "json": json_line}


def epoch_pool(seed, epoch, clk):
    rng = random.Random(f"{seed}:{epoch}")
    start = T0 + epoch * EPOCH_SECONDS
    times = sorted(start + rng.random() * EPOCH_SECONDS for _ in range(POOL))
    return [GENERATORS[weighted(rng, KIND)](rng, clk, t).encode() for t in times], rng


def generate(out, size, seed):
    clk = Clock()
    written = 0
    epoch = 0
    while written < size:
        pool, rng = epoch_pool(seed, epoch, clk)
        span = len(pool) - WINDOW
        epoch_written = 0
        while epoch_written < EPOCH_BYTES and written < size:
            lo = int(span * epoch_written / EPOCH_BYTES)
            block = b"".join(rng.choices(pool[lo:lo + WINDOW], k=BLOCK_EVENTS))
            if written + len(block) > size:
                block = block[:block.rfind(b"\n", 0, size - written) + 1]
                if not block:
                    return written
            out.write(block)
            written += len(block)
            epoch_written += len(block)
        epoch += 1
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output file ('-' for stdout)")
    ap.add_argument("size_mib", type=float, help="size in MiB (the output is cut at a line end at or below it)")
    ap.add_argument("--seed", default="1", help="PRNG seed (default 1)")
    args = ap.parse_args()
    size = int(args.size_mib * (1 << 20))
    started = time.monotonic()
    if args.out == "-":
        n = generate(sys.stdout.buffer, size, args.seed)
    else:
        tmp = args.out + ".tmp"
        with open(tmp, "wb", buffering=1 << 20) as f:
            n = generate(f, size, args.seed)
        os.replace(tmp, args.out)
    secs = time.monotonic() - started
    print(f"gen_corpus: wrote {n} bytes in {secs:.1f} s ({n / (1 << 20) / max(secs, 1e-9):.0f} MiB/s)", file=sys.stderr)


if __name__ == "__main__":
    main()
