#!/bin/sh
# maildir-rerun-ab.sh WORK KIND ROUNDS MODE BIN_A BIN_B (benches/RESULTS-incremental.md,
# Round 12): WORK is benches/maildir-source-rerun.sh's work directory (KIND: numbered or
# pristine, made by it); one source (WORK/KIND copied), one destination,
# then ROUNDS x (change, 2 s, re-run A; change, 2 s, re-run B): the task-clock (perf stat) of each
# re-run, and its syscalls' count (strace -c -f) once at the end. MODE: issue (5 new, 3
# deleted, 10 flag changes: benches/maildir-source-rerun.sh's change) or deliveries (5 new).
set -eu
here=$(dirname "$0")
W=$1 KIND=$2 ROUNDS=$3 MODE=$4 A=$5 B=$6
rm -rf "$W/absrc" "$W/abdst"; cp -a "$W/$KIND" "$W/absrc"; sleep 2
"$A" backup --no-fsync "maildir:$W/absrc" "maildir:$W/abdst" >/dev/null 2>&1
# The benchmark's change (5 new, 3 deleted, FLAG_CHANGES renames), taken from it.
sed -n '/^change() {/,/^}/p' "$here/../maildir-source-rerun.sh" >"$W/change.sh"
echo 'change "$1" "$2"' >>"$W/change.sh"
r=0
change() {
  r=$((r + 1))
  if [ "$MODE" = issue ]; then
    FLAG_CHANGES=10 sh "$W/change.sh" "$W/absrc" "$r" >/dev/null
  else
    for k in 1 2 3 4 5; do printf 'Subject: d %s %s\n\nx\n' $r $k > "$W/absrc/new/$((1900000000 + r * 10 + k)).M${r}_${k}P3.mta"; done
    sleep 2
  fi
}
: > "$W/ab.t"
for i in $(seq "$ROUNDS"); do
  for bin in "$A" "$B"; do
    change
    perf stat -x, -e task-clock -o "$W/ab.perf" "$bin" backup --no-fsync "maildir:$W/absrc" "maildir:$W/abdst" >/dev/null 2>&1
    echo "$(basename $bin) $(awk -F, '/task-clock/ {print $1}' "$W/ab.perf")" >> "$W/ab.t"
  done
done
for bin in "$A" "$B"; do
  change
  strace -c -f -o "$W/ab-$(basename $bin).strace" "$bin" backup --no-fsync "maildir:$W/absrc" "maildir:$W/abdst" >/dev/null 2>&1
  echo "$(basename $bin) syscalls: $(awk '/ total$/ {print $4}' "$W/ab-$(basename $bin).strace")"
done
python3 - "$W/ab.t" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for b in dict.fromkeys(r[0] for r in rows):
    c = sorted(float(r[1]) for r in rows if r[0] == b)
    print(f"{b}: task-clock median {statistics.median(c):.1f} ms (min {c[0]:.1f}, max {c[-1]:.1f}), n={len(c)}")
PY
