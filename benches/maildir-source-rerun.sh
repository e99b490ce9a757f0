#!/bin/sh
# Re-runs of `dsync backup` from a local Maildir source of 100 000 messages into a Maildir
# destination (issue 23 item 1, Maildir part): unchanged (no-op) and after 5 new + 3 deleted
# files, for a source without dovecot-uidlist (filled by another program) and one Dovecot
# numbered. Times (median of RUNS) and syscall counts (strace -c -f) per binary.
#
#   benches/maildir-source-rerun.sh WORK_DIR DSYNC [DSYNC...]
#
# Environment: MESSAGES (100000), RUNS (3), KINDS ("pristine numbered"), FLAG_CHANGES (0:
# per round also that many flag changes, renames in cur/), CPU=1 (re-run times as
# "wall (user+sys CPU)").
#
# WORK_DIR should be on tmpfs (/dev/shm). Needs python3, strace and (for the Dovecot-numbered
# source) doveadm.
set -eu
work=$1
shift
n=${MESSAGES:-100000}
runs=${RUNS:-3}
mkdir -p "$work"

# A Maildir as procmail or an MTA leaves it: cur/ new/ tmp/, LF line ends, no S=/W= in the
# names, no dovecot-uidlist; 1-3 KiB messages.
generate() {
    python3 - "$1" "$n" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for d in ("cur", "new", "tmp"):
    os.makedirs(os.path.join(root, d), exist_ok=True)
pad = "x" * 75 + "\n"
for i in range(n):
    t = 1600000000 + i
    flags = "S" if i % 3 else ""
    body = "".join(pad for _ in range(10 + i % 25))
    with open(os.path.join(root, "cur", f"{t}.M{i}P1.bench:2,{flags}"), "w") as f:
        f.write(f"From: a{i % 97}@example.org\nTo: b@example.org\nSubject: message {i}\n"
                f"Message-ID: <{i}@bench>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\n{body}")
EOF
}

# Another program delivers 5 messages into new/ and deletes 3 from cur/ (round $2); a client
# changes FLAG_CHANGES messages' flags.
change() {
    python3 - "$1" "$2" "${FLAG_CHANGES:-0}" <<'EOF'
import os, sys
root, r, flag_changes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for k in range(5):
    t = 1800000000 + r * 10 + k
    with open(os.path.join(root, "new", f"{t}.M{r}_{k}P2.mta"), "w") as f:
        f.write(f"Subject: new {r} {k}\n\nnew\n")
names = sorted(os.listdir(os.path.join(root, "cur")))
for name in names[r * 1000 : r * 1000 + 3]:
    os.unlink(os.path.join(root, "cur", name))
for name in names[r * 1000 + 500 : r * 1000 + 500 + flag_changes]:
    base, _, flags = name.partition(":2,")
    flags = "".join(sorted(set(flags) ^ {"F"}))
    os.rename(os.path.join(root, "cur", name), os.path.join(root, "cur", f"{base}:2,{flags}"))
EOF
    # Dovecot (and we) trust a directory's mtime only once it is a second old.
    sleep 2
}

median() { sort -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }

timed() { # prints seconds (with CPU=1: "wall (cpu)", sorted by wall)
    start=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$work/last.cpu" "$@" >"$work/last.log" 2>&1 ||
        { echo "FAILED: $*" >&2; tail -5 "$work/last.log" >&2; exit 1; }
    end=$(date +%s.%N)
    if [ "${CPU:-0}" = 1 ]; then
        printf "%.2f (%.2f)\n" "$(echo "$end - $start" | bc)" \
            "$(awk '{print $1 + $2}' "$work/last.cpu")"
    else
        printf "%.2f\n" "$(echo "$end - $start" | bc)"
    fi
}

# Syscalls of one run (the `calls` column of strace -c's total line); the table is kept in
# WORK_DIR/strace-$1.out.
syscalls() {
    strace -c -f -o "$work/strace-$1.out" "$dsync" backup --no-fsync "maildir:$source" \
        "maildir:$dest" >/dev/null 2>&1
    awk '/ total$/ {print $4}' "$work/strace-$1.out"
}

pristine="$work/pristine"
if [ ! -d "$pristine/cur" ]; then
    generate "$pristine"
fi
if [ ! -f "$work/numbered/dovecot-uidlist" ] && command -v doveadm >/dev/null; then
    rm -rf "$work/numbered"
    cp -a "$pristine" "$work/numbered"
    # Dovecot numbers it (writes dovecot-uidlist) as the unprivileged user nobody.
    mkdir -p "$work/home"
    chown -R 65534:65534 "$work/numbered" "$work/home"
    printf 'mail_location = maildir:%s:INDEX=MEMORY\nmail_uid = 65534\nmail_gid = 65534\n' \
        "$work/numbered" >"$work/dovecot.conf"
    env USER=nobody HOME="$work/home" doveadm -c "$work/dovecot.conf" mailbox status messages INBOX
fi

echo "| source | binary | full copy | no-op | re-run (5 new, 3 deleted, ${FLAG_CHANGES:-0} flag changes) | no-op syscalls | re-run syscalls |"
echo "|---|---|--:|--:|--:|--:|--:|"
for kind in ${KINDS:-pristine numbered}; do
    [ -d "$work/$kind/cur" ] || continue
    for dsync in "$@"; do
        source="$work/source"
        dest="$work/dest"
        rm -rf "$source" "$dest"
        cp -a "$work/$kind" "$source"
        sleep 2
        # (Not `timed run`: /usr/bin/time runs programs, not shell functions.)
        run() { timed "$dsync" backup --no-fsync "maildir:$source" "maildir:$dest"; }
        full=$(run)
        noop=$(for i in $(seq "$runs"); do run; done | median)
        round=1
        rerun=$(for i in $(seq "$runs"); do
            change "$source" "$round" >&2
            round=$((round + 1))
            run
        done | median)
        round=$((runs + 1))
        noop_calls=$(syscalls "$kind-$(basename "$dsync")-noop")
        change "$source" "$round"
        rerun_calls=$(syscalls "$kind-$(basename "$dsync")-rerun")
        echo "| $kind | $(basename "$dsync") | $full s | $noop s | $rerun s | $noop_calls | $rerun_calls |"
    done
done
