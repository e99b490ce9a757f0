#!/bin/sh
# maildir-rerun-ab.sh WORK KIND ROUNDS MODE BIN_A BIN_B (benches/RESULTS-incremental.md,
# Rounds 12 and 13): WORK is benches/maildir-source-rerun.sh's work directory (KIND: numbered or
# pristine, made by it); a source (WORK/KIND copied) and a destination per binary (each keeps
# its own state and kept listings: two builds whose listing formats differ would otherwise
# make each other list the folder whole), then ROUNDS x (change both sources, 2 s, re-run A and B,
# the order turned each round): the task-clock (perf stat) of each re-run, then one no-op each, and one more
# change with each re-run's syscalls counted (strace -c -f) and its peak RSS
# (/usr/bin/time -f %M). MODE: issue (5 new, 3 deleted, 10 flag changes:
# benches/maildir-source-rerun.sh's change), deliveries (5 new) or noop (nothing changed).
set -eu
here=$(dirname "$0")
W=$1 KIND=$2 ROUNDS=$3 MODE=$4 A=$5 B=$6
for side in A B; do
  rm -rf "$W/absrc-$side" "$W/abdst-$side"; cp -a "$W/$KIND" "$W/absrc-$side"
done
sleep 2
"$A" backup --no-fsync "maildir:$W/absrc-A" "maildir:$W/abdst-A" >/dev/null 2>&1
"$B" backup --no-fsync "maildir:$W/absrc-B" "maildir:$W/abdst-B" >/dev/null 2>&1
# The benchmark's change (5 new, 3 deleted, FLAG_CHANGES renames), taken from it.
sed -n '/^change() {/,/^}/p' "$here/../maildir-source-rerun.sh" >"$W/change.sh"
echo 'change "$1" "$2"' >>"$W/change.sh"
r=0
change() { # both sources the same way, then the 2 s Dovecot's dirty-second rule asks for
  r=$((r + 1))
  for side in A B; do
    case "$MODE" in
      issue) FLAG_CHANGES=10 sh "$W/change.sh" "$W/absrc-$side" "$r" >/dev/null ;;
      deliveries)
        for k in 1 2 3 4 5; do
          printf 'Subject: d %s %s\n\nx\n' $r $k > "$W/absrc-$side/new/$((1900000000 + r * 10 + k)).M${r}_${k}P3.mta"
        done ;;
      noop) ;;
    esac
  done
  sleep 2
}
run() { # run BIN SIDE [wrapper...]
  bin=$1 side=$2; shift 2
  "$@" "$bin" backup --no-fsync "maildir:$W/absrc-$side" "maildir:$W/abdst-$side" >/dev/null 2>&1
}
: > "$W/ab.t"
for i in $(seq "$ROUNDS"); do
  change
  # The order turns each round.
  pairs="$A A|$B B"; [ $((i % 2)) = 0 ] && pairs="$B B|$A A"
  IFS='|'; set -- $pairs; unset IFS
  for pair in "$1" "$2"; do
    set -- $pair
    run "$1" "$2" perf stat -x, -e task-clock -o "$W/ab.perf"
    echo "$(basename $1) $(awk -F, '/task-clock/ {print $1}' "$W/ab.perf")" >> "$W/ab.t"
  done
done
for pair in "$A A" "$B B"; do
  set -- $pair
  run "$1" "$2" perf stat -x, -e task-clock -o "$W/ab.perf"
  echo "$(basename $1) no-op task-clock: $(awk -F, '/task-clock/ {print $1}' "$W/ab.perf") ms"
done
change
for pair in "$A A" "$B B"; do
  set -- $pair
  run "$1" "$2" strace -c -f -o "$W/ab-$(basename $1).strace"
  echo "$(basename $1) syscalls: $(awk '/ total$/ {print $4}' "$W/ab-$(basename $1).strace")"
done
change
for pair in "$A A" "$B B"; do
  set -- $pair
  run "$1" "$2" /usr/bin/time -f %M -o "$W/ab.rss"
  echo "$(basename $1) peak RSS: $(cat "$W/ab.rss") KiB"
done
python3 - "$W/ab.t" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for b in dict.fromkeys(r[0] for r in rows):
    c = sorted(float(r[1]) for r in rows if r[0] == b)
    print(f"{b}: task-clock median {statistics.median(c):.1f} ms (min {c[0]:.1f}, max {c[-1]:.1f}), n={len(c)}")
PY
