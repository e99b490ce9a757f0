#!/bin/sh
# memory-modes.sh DSYNC SOURCE WORKDIR: peak RSS (KiB) and seconds of the four modes of
# benches/RESULTS-memory.md, Maildir to Maildir, one line each. SOURCE is a folder made by
# maildir-folder.py; the destination and the state file are made in WORKDIR and removed.
set -u
BIN=$1 SRC=$2 W=$3
D=$W/memory-destination S=$W/memory-state
# The state's companions too (a maildir: source's kept listings, our uidlists): a
# listing left by an earlier run would be read by the next full backup.
rm -rf "$D" "$S" "$S".*
for mode in backup-full noop-state no-state sync-1; do
  case $mode in
    backup-full|noop-state) set -- backup --no-fsync --state-file "$S" ;;
    no-state) set -- backup --no-fsync --no-state ;;
    sync-1) set -- sync -1 --no-fsync --state-file "$S" ;;
  esac
  /usr/bin/time -o "$W/memory-time" -f "%M %e" "$BIN" "$@" "maildir:$SRC" "maildir:$D" \
    >/dev/null 2>"$W/memory-errors" || { echo "$mode failed:"; tail -3 "$W/memory-errors"; }
  echo "$mode $(cat "$W/memory-time")"
done
rm -rf "$D" "$S" "$S".* "$W/memory-time" "$W/memory-errors"
