#!/bin/sh
# The GC run's steps around retention.sh (only when gc.Retention is set), in the kubectl image:
#   lease   takes the GC lease before retention starts, so that retention and GC run once at a time
#           (maintenance.sh enter then keeps it, as the same holder); fails while another holds it;
#   finish  the last step: restore.sh, then the retention result; fails the Job if either failed.
#
# Env: as restore.sh.
set -u

. "$SCRIPTS_DIR/lease.sh"

case "${1:-}" in
lease)
	lease_acquire || { lease_log "the GC lease is held (another GC run, or the watchdog); not starting"; exit 1; }
	;;
finish)
	sh "$SCRIPTS_DIR/restore.sh"
	restored=$?
	retention=$(cat "$STATUS_DIR/retention" 2>/dev/null || echo "missing")
	echo "summary: retention=$retention"
	[ "$restored" = 0 ] && [ "$retention" = 0 ]
	;;
*) echo "usage: $0 lease|finish" >&2; exit 2 ;;
esac
