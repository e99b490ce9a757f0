#!/bin/sh
# maildir-changed-rerun.sh SRC WORK BIN... (benches/RESULTS-memory.md, Round 12): one full
# backup (first BIN, fresh state; the destination WORK/d or $DEST), then per BIN in turn:
# FLAGS (10) flag changes in SRC/cur (F toggled), 2 s, the re-run's peak RSS and times.
# SKIPFULL=1 reuses the state and destination of an earlier call (ROUND0: rounds done).
set -eu
SRC=$1 W=$2; shift 2
mkdir -p "$W"; D=${DEST:-$W/d} S=$W/st
[ "${SKIPFULL:-0}" = 1 ] || rm -rf "$D" "$S" "$S".*
[ "${SKIPFULL:-0}" = 1 ] || /usr/bin/time -f "full %M KiB %e s" "$1" backup --no-fsync --state-file "$S" "maildir:$SRC" "maildir:$D" >/dev/null 2>$W/err || tail -3 $W/err
[ "${SKIPFULL:-0}" = 1 ] || tail -1 $W/err
r=${ROUND0:-0}
for bin in "$@"; do
  r=$((r+1))
  python3 - "$SRC" "$r" "${FLAGS:-10}" <<'PY'
import os, sys
root, r, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cur = os.path.join(root, "cur")
names = sorted(os.listdir(cur))[r * 1000 : r * 1000 + k]
for name in names:
    base, _, flags = name.partition(":2,")
    flags = "".join(sorted(set(flags) ^ {"F"}))
    os.rename(os.path.join(cur, name), os.path.join(cur, f"{base}:2,{flags}"))
PY
  sleep 2
  /usr/bin/time -f "$(basename $bin) %M KiB %e s %U u %S s" "$bin" backup --no-fsync --state-file "$S" "maildir:$SRC" "maildir:$D" >/dev/null 2>$W/err || tail -3 $W/err
  tail -1 $W/err
done
