#!/bin/sh
# doveadm backup (Dovecot 2.3, mail_fsync=never) re-runs from the uidlist-less source that
# benches/maildir-source-rerun.sh generated in WORK_DIR/pristine, as the user nobody (Dovecot
# writes dovecot-uidlist and index files into its copy at the first run).
#   benches/maildir-source-doveadm.sh WORK_DIR
set -eu
work=$1
runs=${RUNS:-3}
src=$work/dv-source; dst=$work/dv-dest
rm -rf "$src" "$dst"; cp -a "$work/pristine" "$src"; mkdir -p "$work/home" "$dst"
chown -R 65534:65534 "$src" "$dst" "$work/home"
printf 'mail_location = maildir:%s\nmail_uid = 65534\nmail_gid = 65534\nmail_fsync = never\n' "$src" >"$work/dv.conf"
dv() { env USER=nobody HOME="$work/home" doveadm -c "$work/dv.conf" backup "maildir:$dst"; }
timed() { s=$(date +%s.%N); "$@" >"$work/dv.log" 2>&1 || { echo FAILED >&2; cat "$work/dv.log" >&2; exit 1; }; e=$(date +%s.%N); printf "%.2f\n" "$(echo "$e - $s" | bc)"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
change() {
    python3 - "$1" "$2" <<'PY'
import os, sys
root, r = sys.argv[1], int(sys.argv[2])
for k in range(5):
    t = 1800000000 + r * 10 + k
    with open(os.path.join(root, "new", f"{t}.M{r}_{k}P2.mta"), "w") as f:
        f.write(f"Subject: new {r} {k}\n\nnew\n")
names = sorted(n for n in os.listdir(os.path.join(root, "cur")))
for name in names[r * 1000 : r * 1000 + 3]:
    os.unlink(os.path.join(root, "cur", name))
PY
    chown -R 65534:65534 "$1/new"
    sleep 2
}
sleep 2
full=$(timed dv)
noop=$(for i in $(seq "$runs"); do timed dv; done | median)
rerun=$(for i in $(seq "$runs"); do change "$src" "$i" >&2; timed dv; done | median)
strace -c -f -o "$work/dv-strace.out" env USER=nobody HOME="$work/home" doveadm -c "$work/dv.conf" backup "maildir:$dst" >/dev/null 2>&1
noop_calls=$(awk '/ total$/ {print $4}' "$work/dv-strace.out")
change "$src" $((runs + 1))
strace -c -f -o "$work/dv-strace.out" env USER=nobody HOME="$work/home" doveadm -c "$work/dv.conf" backup "maildir:$dst" >/dev/null 2>&1
rerun_calls=$(awk '/ total$/ {print $4}' "$work/dv-strace.out")
echo "| pristine | doveadm backup (mail_fsync=never) | $full s | $noop s | $rerun s | $noop_calls | $rerun_calls |"
