#!/usr/bin/env python3
"""A Maildir INBOX of N tiny messages, cheaply, for the memory benchmark (RESULTS-memory.md).

Usage: maildir-folder.py N DIR

Every message is a hard link to one file (so 1 000 000 messages take one inode's data),
named like Dovecot names a saved message (`<secs>.M<i>P1.gen,S=<size>,W=<vsize>:2,S`), with
a `dovecot-uidlist` that gives message i UID i: the source as an earlier backup would have
left it, so listing it opens no file (sizes come from the names).
"""
import os
import sys

n, root = int(sys.argv[1]), sys.argv[2]
for sub in ("cur", "new", "tmp"):
    os.makedirs(os.path.join(root, sub), exist_ok=True)
body = (
    "From: a@example.org\nTo: b@example.org\nSubject: memory benchmark\n"
    "Date: Tue, 14 Nov 2023 22:13:20 +0000\nMessage-ID: <gen@example.org>\n\n"
    + "x" * 60 + "\n"
).encode()
size, vsize = len(body), len(body) + body.count(b"\n")
seed = os.path.join(root, "tmp", "seed")
with open(seed, "wb") as f:
    f.write(body)
secs = 1_700_000_000
with open(os.path.join(root, "dovecot-uidlist"), "w") as uidlist:
    uidlist.write(f"3 V{secs} N{n + 1} G{'0123456789abcdef' * 2}\n")
    for i in range(1, n + 1):
        base = f"{secs}.M{i}P1.gen,S={size},W={vsize}"
        os.link(seed, os.path.join(root, "cur", base + ":2,S"))
        uidlist.write(f"{i} :{base}\n")
os.unlink(seed)
