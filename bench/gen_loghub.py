#!/usr/bin/env python3
"""Benchmark inputs built at run time from the Loghub samples (never copied into the project).

    bench/gen_loghub.py corpus OUT SIZE_MIB [--loghub DIR] [--seed S]
    bench/gen_loghub.py patterns OUT_DIR [--loghub DIR] [--seed S]

corpus: the *_2k.log samples (Apache, HDFS, Hadoop, OpenSSH, Linux, Spark, ...) interleaved at
random and repeated up to SIZE_MIB MiB; each repetition rewrites the digits of every line (same
length, seeded), so the text does not repeat verbatim and numbers vary as in a real log.

patterns: rule sets of 10, 20, 100 and 1000 rules (nested: a bigger set only adds rules), written
the way users write them, from the samples' vocabulary: words of 4+ letters, paired either as
they occur together in a line (those rules hit) or at random (most never hit, as in real rule
files). 40% of the rules take a pair (or triple) of words that occur together in at most
32 of the samples' 32,000 lines (0.1%), so they hit rarely, as alert rules do; the others take
words at random and almost never hit. The shapes, interleaved (9 + 9 + 9 + 9 + 4 of every 40):
    w1[^\\n]{0,40}w2\\s*[:=]?\\s*\\d+     bounded gap, then a number
    (?i)w1.*w2                          case-insensitive, any gap
    \\bw1 w2\\b                           a phrase with word boundaries
    w1\\W+w2                             words apart by punctuation
    w1 w2 w3                            a literal phrase (`Failed password for`)
Files per set N, as for bench/gen_patterns.py: N.txt (Rust regex, for rg -f and dingtail),
N.ere.txt (POSIX ERE for grep -E under LC_ALL=C) and N.yaml (dingtail config, no robot).

No third-party packages; Python 3.8+.
"""

import argparse
import glob
import os
import random
import re
import sys

SIZES = [10, 20, 100, 1000]
HERE = os.path.dirname(os.path.abspath(__file__))


def default_loghub():
    for cand in (os.path.join(HERE, "..", "..", "shared", "data", "loghub"),
                 os.path.join(HERE, "..", "..", "..", "shared", "data", "loghub"),
                 "/work/shared/data/loghub"):
        if os.path.isdir(cand):
            return os.path.abspath(cand)
    return None


def samples(loghub):
    files = sorted(glob.glob(os.path.join(loghub, "*.log")))
    if not files:
        sys.exit(f"gen_loghub: no *.log under {loghub}")
    lines = []
    for f in files:
        with open(f, "rb") as fh:
            lines.extend(l.rstrip(b"\r\n") for l in fh if l.strip())
    return lines


def corpus(args):
    lines = samples(args.loghub)
    rng = random.Random(args.seed)
    target = args.size << 20
    digit = re.compile(rb"[0-9]")
    written = 0
    rep = 0
    out = sys.stdout.buffer if args.out == "-" else open(args.out, "wb")
    while written < target:
        order = list(range(len(lines)))
        rng.shuffle(order)
        buf = []
        for i in order:
            line = lines[i]
            if rep:
                line = digit.sub(lambda _m: b"%d" % rng.randrange(10), line)
            if written + len(line) + 1 > target:
                break
            buf.append(line)
            written += len(line) + 1
        else:
            out.write(b"\n".join(buf) + b"\n")
            rep += 1
            continue
        if buf:
            out.write(b"\n".join(buf) + b"\n")
        break
    if out is not sys.stdout.buffer:
        out.close()
    print(f"gen_loghub: wrote {written} bytes ({rep + 1} passes over {len(lines)} lines)",
          file=sys.stderr)


WORD = re.compile(r"\b[A-Za-z][a-z]{3,15}\b")
# The shapes, mixed as in the held-out set: of every 40 rules, 9 in each of the four
# heavy shapes and 4 plain literal phrases of three words (`Failed password for`), interleaved so
# that every set, 10 rules included, holds each shape.
GAP = lambda w: rf"{w[0]}[^\n]{{0,40}}{w[1]}\s*[:=]?\s*\d+"
CASELESS = lambda w: rf"(?i){w[0]}.*{w[1]}"
PHRASE_B = lambda w: rf"\b{w[0]} {w[1]}\b"
PUNCT = lambda w: rf"{w[0]}\W+{w[1]}"
LITERAL = lambda w: " ".join(w)
SHAPES = [GAP, CASELESS, PHRASE_B, PUNCT] * 9
for at in (9, 19, 29, 39):
    SHAPES.insert(at, LITERAL)
# A rule that hits takes a word pair (or triple) found in at most this many of the sample lines
# (0.1%): alert rules name rare events, not the lines every request writes.
MAX_LINES_PER_RULE = 32
# Share of rules written from words that occur together (the others pair words at random and,
# as most rules in a real rule file on a given day, never hit).
HITTING = 0.4
def to_ere(p):
    ci = p.startswith("(?i)")
    if ci:
        p = p[4:]
    p = p.replace(r"[^\n]", ".").replace(r"\s", "[[:space:]]").replace(r"\d", "[0-9]")
    p = p.replace(r"\W", "[^[:alnum:]_]")
    if ci:
        p = re.sub(r"[A-Za-z]", lambda m: f"[{m.group(0).lower()}{m.group(0).upper()}]", p)
        # the escapes above were rewritten into classes: put them back
        p = p.replace("[[[:space:]]]", "[[:space:]]")
    return p


def patterns(args):
    lines = samples(args.loghub)
    rng = random.Random(args.seed)
    # word runs of 2 and 3, with the number of sample lines holding each
    runs, words = {2: {}, 3: {}}, {}
    for l in lines:
        ws = WORD.findall(l.decode("utf-8", "replace"))
        for w in set(ws):
            words[w] = words.get(w, 0) + 1
        for n in (2, 3):
            for run in set(zip(*(ws[i:] for i in range(n)))):
                if len(set(run)) == n:
                    runs[n][run] = runs[n].get(run, 0) + 1
    rare = {n: sorted(r for r, c in runs[n].items() if c <= MAX_LINES_PER_RULE) for n in runs}
    vocab = sorted(words)
    seen = set()
    rules = []
    while len(rules) < max(SIZES):
        shape = SHAPES[len(rules) % len(SHAPES)]
        n = 3 if shape is LITERAL else 2
        if rng.random() < HITTING:
            w = rng.choice(rare[n])
        else:
            w = tuple(rng.choice(vocab) for _ in range(n))
        p = shape(w)
        if p in seen:
            continue
        seen.add(p)
        rules.append(p)
    os.makedirs(args.out, exist_ok=True)
    for n in SIZES:
        with open(os.path.join(args.out, f"{n}.txt"), "w") as f:
            f.write("".join(p + "\n" for p in rules[:n]))
        with open(os.path.join(args.out, f"{n}.ere.txt"), "w") as f:
            f.write("".join(to_ere(p) + "\n" for p in rules[:n]))
        with open(os.path.join(args.out, f"{n}.yaml"), "w") as f:
            f.write(f"# {n} rules generated by bench/gen_loghub.py from the Loghub vocabulary\n")
            f.write("defaults: {window: 1h, max_lines: 5}\nrules:\n")
            for i, p in enumerate(rules[:n]):
                f.write(f"  - name: r{i + 1:04d}\n    match: '{p.replace(chr(39), chr(39) * 2)}'\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["corpus", "patterns"])
    ap.add_argument("out")
    ap.add_argument("size", nargs="?", type=int, default=64)
    ap.add_argument("--loghub", default=default_loghub())
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not args.loghub:
        sys.exit("gen_loghub: no Loghub samples found; pass --loghub DIR")
    (corpus if args.what == "corpus" else patterns)(args)


if __name__ == "__main__":
    main()
