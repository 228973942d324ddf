#!/usr/bin/env python3
"""Writes the benchmark rule sets: bench/patterns/{10,20,100,1000}.{txt,ere.txt,yaml}.

    bench/gen_patterns.py [OUT_DIR]        (default: bench/patterns next to this script)

The sets are nested (the 10 rules are the first 10 of the 20, and so on), so a bigger set only
adds rules. The first 20 are the rules an on-call engineer writes first for this corpus (5xx,
ERROR lines, exceptions, sshd brute force, OOM, segfaults, failed units...); the rest are drawn,
with a fixed seed, from families of rules real rule files accumulate: blocklisted IPs, user names,
endpoints with a status class, exception classes, error phrases of other systems (most of which
never appear, as in real life), services, hosts, trace ids.

Files per set N:
  N.txt      one regex per line, Rust regex syntax: for `rg -f` and the dingtail config.
  N.ere.txt  the same regexes in POSIX ERE for `grep -E -f` (run with LC_ALL=C): `(?:` becomes
             `(`, `\\d` becomes `[0-9]`, and a leading `(?i)` (which ERE lacks) becomes
             per-letter classes (`(?i)oom` -> `[oO][oO][mM]`). This is equivalent on ASCII text
             (the corpus is ASCII; Rust's Unicode `(?i)` would also fold e.g. U+212A KELVIN SIGN).
             `\\b \\s \\S \\w` are kept: GNU grep supports them.
  N.yaml     the dingtail config: rules r0001.., no robot (dingtail prints instead of sending),
             defaults {window: 1h, max_lines: 5}.
"""

import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vocab as V  # noqa: E402

SIZES = [10, 20, 100, 1000]

# The first rules anyone writes for these logs, most important first.
CORE = [
    r'HTTP/1\.[01]" 5\d\d ',                                             # nginx 5xx
    r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} +ERROR ',                   # Spring ERROR lines
    r'^(?:Caused by: )?(?:[a-z]\w*\.)+[A-Z]\w*(?:Exception|Error)(?::|$)',  # exception heads
    r'"level":"(?:error|fatal)"',                                        # JSON errors
    r'Failed password for (?:invalid user )?\S+ from',                   # sshd brute force
    r'(?i)out of memory|oom-killer',                                     # OOM
    r'segfault at [0-9a-f]+ ip',                                         # crashes
    r'\.service: (?:Main process exited, code=exited, status=[1-9]|Failed with result)',
    r'(?i)connection (?:refused|reset)',                                 # network trouble
    r'HikariPool-\d+ - (?:Connection is not available|Thread starvation)',
    # the next 10 complete the 20-rule set
    r'HTTP/1\.1" (?:429|499) ',                                          # throttled, client gave up
    r"CircuitBreaker '\w+' (?:is OPEN|changed state from CLOSED to OPEN)",
    r'"(?:GET|POST|HEAD) /(?:wp-login\.php|\.env|\.git/config|phpmyadmin)',
    r'(?i)sqlmap|nikto|masscan|zgrab',
    r'error: maximum authentication attempts exceeded for \w+ from',
    r'kernel: \[[ 0-9.]+\] (?:EXT4-fs error|blk_update_request: I/O error|NETDEV WATCHDOG)',
    r'nf_conntrack: table full|Possible SYN flooding on port \d+',
    r'x509: certificate (?:has expired|signed by unknown authority)',
    r'(?i)panic(?: recovered)?:|nil pointer dereference',
    r'Failed to start [\w@.-]+\.service',
]

# Error phrases from systems on-call rule files cover; some occur in the corpus, most do not.
PHRASES = [
    "could not serialize access due to concurrent update", "deadlock detected",
    "remaining connection slots are reserved", "FATAL:  password authentication failed for user",
    "Too many connections", "Lock wait timeout exceeded", "READONLY You can't write against a read only replica",
    "MISCONF Redis is configured to save RDB snapshots", "CLUSTERDOWN", "circuit_breaking_exception",
    "cluster_block_exception", "flood-stage watermark", "No space left on device", "Read-only file system",
    "too many open files", "Cannot allocate memory", "Name or service not known",
    "Temporary failure in name resolution", "certificate verify failed",
    "upstream timed out (110: Connection timed out) while reading response header",
    "no live upstreams while connecting to upstream", "client intended to send too large body",
    "worker_connections are not enough", "OOMKilled", "CrashLoopBackOff", "Back-off restarting failed container",
    "Liveness probe failed", "Readiness probe failed", "ImagePullBackOff", "ErrImagePull", "FailedScheduling",
    "etcdserver: request timed out", "apply request took too long", "Offset commit failed",
    "LEADER_NOT_AVAILABLE", "NotLeaderForPartitionException", "GC overhead limit exceeded", "Java heap space",
    "Metaspace", "Direct buffer memory", "unable to create new native thread", "Premature EOF", "Broken pipe",
    "SIGSEGV", "core dumped", "Killed process", "watchdog: BUG: soft lockup", "hung_task_timeout_secs",
    "Hardware Error", "Machine check events logged", "Buffer I/O error on dev", "Disk failure on",
    "insufficient_funds", "context deadline exceeded", "connection pool timeout", "lock timeout",
    "run out of available brokers", "Could not get a resource from the pool", "Read timed out",
    "Slow query", "Stock for sku", "Watchdog timeout", "Scheduled restart job", "is low:",
    "transmit queue", "Link is Down", "table full, dropping packet", "request_sock_TCP",
]

NOT_IN_CORPUS_HOSTS = ["web-09", "web-10", "app-07", "db-03", "kafka-01", "es-01"]


def esc(s):
    """Escapes a literal for both Rust regex and ERE (only characters both treat alike)."""
    return re.sub(r'([.^$*+?()\[\]{}|\\])', r'\\\1', s)


def path_re(p):
    return esc(p).replace(r"\{id\}", r"\d+").replace(r"\{hash\}", "[0-9a-f]{8}")


def families(rng):
    """Every candidate rule beyond the core ones, in a fixed order (shuffled by the caller)."""
    out = []
    # blocklisted IPs: some appear (attackers), most not
    for ip in V.BLOCKLIST_IPS[:420]:
        out.append(rf"\b{esc(ip)}\b" if rng.random() < 0.5 else rf"(?:^|[ =]|\[){esc(ip)}(?: |\]|$)")
    # suspicious user names at sshd
    for u in V.BAD_USERS:
        out.append(rf"(?:Invalid|invalid) user {esc(u)} from")
    for u in V.USERS:
        out.append(rf"Accepted (?:password|publickey) for {esc(u)} from (?:\d+\.){{3}}\d+ port \d+ ssh2: (?:RSA|DSA)")
    out.append(r"Accepted \w+ for root from")
    # endpoints with a status class
    for p in V.API_PATHS + V.SCANNER_PATHS:
        for cls in [r"5\d\d", r"40[13]", r"429", r"404"]:
            if rng.random() < 0.55:
                out.append(rf'"(?:GET|POST|PUT|DELETE|PATCH) {path_re(p)}(?:\?[^ "]*)? HTTP/1\.[01]" {cls} ')
    # exception classes, present and absent
    for exc, _ in V.EXCEPTIONS:
        out.append(rf"\b{esc(exc)}\b")
        out.append(rf"^Caused by: {esc(exc)}:")
    for exc in V.ABSENT_EXCEPTIONS:
        out.append(rf"\b{esc(exc)}\b")
        out.append(rf"^Caused by: {esc(exc)}")
    # phrases, some case-insensitive
    for ph in PHRASES:
        out.append(("(?i)" + esc(ph)) if rng.random() < 0.3 else esc(ph))
    # JSON services and namespaces
    for svc in V.SERVICES:
        out.append(rf'"level":"(?:warn|error)","logger":"{svc}\.http"')
        out.append(rf'"status":5\d\d.*"pod":"{svc}-[0-9a-f]{{9}}-[0-9a-f]{{5}}".*"node":"node-(?:1[0-2]|[1-9])"\}}\}}$')
        out.append(rf'"level":"error".*"container":"{svc}"')
    for ns in V.NAMESPACES:
        out.append(rf'"level":"error".*"namespace":"{esc(ns)}"')
        out.append(rf'"status":5\d\d.*"namespace":"{esc(ns)}"')
    for e in V.JSON_ERRORS:
        head = e.split("{")[0].split("\\")[0][:40]
        out.append(rf'"error":"{esc(head)}')
    # hosts: kernel or systemd trouble on one machine
    for h in V.HOSTS + NOT_IN_CORPUS_HOSTS:
        out.append(rf"^[A-Z][a-z]{{2}} [ 0-9]\d \d\d:\d\d:\d\d {esc(h)} kernel: .*(?:[Ee]rror|Out of memory|segfault)")
        out.append(rf"^[A-Z][a-z]{{2}} [ 0-9]\d \d\d:\d\d:\d\d {esc(h)} systemd\[1\]: .*(?:FAILURE|[Ff]ailed)")
    # systemd units, present and absent
    for svc in ["nginx", "docker", "kubelet", "node-exporter", "postgresql@15-main", "redis-server", "containerd",
                "etcd", "haproxy", "keepalived", "chronyd", "sshd", "rsyslog", "filebeat", "fluent-bit"]:
        out.append(rf"{esc(svc)}\.service: (?:Main process exited|Failed with result|Watchdog timeout)")
    # bad user agents per path family
    for ua in V.BAD_AGENTS:
        out.append(rf'" "{esc(ua)}" \d+\.\d{{3}}$')
    # trace ids and order ids people were asked to watch for (almost never appear)
    for _ in range(90):
        out.append(rf'"trace_id":"{rng.getrandbits(128):032x}"')
    for _ in range(60):
        out.append(rf"\border {rng.randrange(10_000, 999_999)}\b")
    # UFW blocks towards sensitive ports from outside
    for port in [22, 23, 3389, 5432, 6379, 8080, 9200, 27017, 11211, 2375]:
        out.append(rf"\[UFW BLOCK\] .* SRC=(?:\d+\.){{3}}\d+ DST=10\.\d+\.\d+\.\d+ .* DPT={port} ")
    # generic styles from copied-around rule files
    out += [r"(?i)\bfatal\b", r"(?i)\bcritical\b", r"(?i)\bemerg(?:ency)?\b", r"\bSEVERE\b",
            r"(?i)permission denied", r"(?i)access denied", r"(?i)unauthori[sz]ed", r"(?i)forbidden",
            r"(?i)stack ?trace", r"(?i)traceback \(most recent call last\)", r"\bFAILURE\b",
            r"status=\d+/FAILURE", r"exit code [1-9]\d*", r"(?i)\bnot responding\b", r"(?i)\bunreachable\b"]
    return out


def to_ere(p):
    """Rust-regex pattern (in the subset used here) -> POSIX ERE with GNU extensions."""
    ci = p.startswith("(?i)")
    if ci:
        p = p[4:]
    out, i, n = [], 0, len(p)
    while i < n:
        c = p[i]
        if c == "\\":
            d = p[i + 1]
            if d == "d":
                out.append("[0-9]")
            elif d == "D":
                out.append("[^0-9]")
            elif d.isalpha() and d not in "bBsSwW":
                raise ValueError(f"escape \\{d} not translated: {p}")
            else:
                out.append(c + d)
            i += 2
        elif c == "[":
            j = i + 1
            body = []
            if p[j] == "^":
                body.append("^")
                j += 1
            items = []
            while p[j] != "]":
                if p[j] == "\\":
                    e = p[j + 1]
                    items.append({"d": "0-9", "s": "[:space:]", "w": "[:alnum:]_"}.get(e) or
                                 ({".": ".", "-": "-"}.get(e) or _fail(p)))
                    j += 2
                elif j + 2 < n and p[j + 1] == "-" and p[j + 2] != "]":
                    items.append(p[j:j + 3])
                    j += 3
                else:
                    items.append(p[j])
                    j += 1
            if ci:
                items += [it.swapcase() for it in items if any(ch.isalpha() for ch in it) and not it.startswith("[:")]
            # a literal '-' must come last in ERE
            items = [it for it in items if it != "-"] + [it for it in items if it == "-"]
            out.append("[" + "".join(body + items) + "]")
            i = j + 1
        elif p.startswith("(?:", i):
            out.append("(")
            i += 3
        elif p.startswith("(?", i):
            raise ValueError(f"flag group not translated: {p}")
        elif ci and c.isalpha():
            out.append(f"[{c.lower()}{c.upper()}]")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _fail(p):
    raise ValueError(f"class escape not translated: {p}")


def yaml_quote(p):
    return "'" + p.replace("'", "''") + "'"


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "patterns")
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random("dingtail-bench-patterns-v1")
    rest = families(rng)
    rng.shuffle(rest)
    seen, allp = set(), []
    for p in CORE + rest:
        if p not in seen:
            seen.add(p)
            allp.append(p)
    assert len(allp) >= max(SIZES), f"only {len(allp)} patterns"
    for n in SIZES:
        pats = allp[:n]
        with open(os.path.join(out_dir, f"{n}.txt"), "w") as f:
            f.writelines(p + "\n" for p in pats)
        with open(os.path.join(out_dir, f"{n}.ere.txt"), "w") as f:
            f.writelines(to_ere(p) + "\n" for p in pats)
        with open(os.path.join(out_dir, f"{n}.yaml"), "w") as f:
            f.write(f"# {n} benchmark rules, generated by bench/gen_patterns.py: do not edit, regenerate.\n")
            f.write("# No robot: `dingtail run` prints the messages instead of sending them.\n")
            f.write("defaults: {window: 1h, max_lines: 5}\nrules:\n")
            for i, p in enumerate(pats, 1):
                f.write(f"  - {{name: r{i:04d}, match: {yaml_quote(p)}}}\n")
    print(f"gen_patterns: wrote sets {SIZES} to {out_dir} ({len(allp)} candidates)", file=sys.stderr)


if __name__ == "__main__":
    main()
