#!/bin/sh
# The GC run's steps around retention.sh (only when gc.Retention is set), in the kubectl image:
#   lease   takes the GC lease before retention starts, so that retention runs once at a time;
#           fails while another holds it;
#   release gives it back after retention, for maintenance.sh enter to take it afresh (a lease
#           this pod holds is being renewed by its sidecar, whose renewals would fail enter's
#           resourceVersion test); a run that takes it meanwhile makes this one stop at enter;
#   finish  the last step: restore.sh, then the retention result and the collector's count; fails
#           the Job if either failed. It also tells retention.sh report that writes are back.
#
# Env: as restore.sh.
set -u

. "$SCRIPTS_DIR/lease.sh"

case "${1:-}" in
lease)
	lease_acquire || { lease_log "the GC lease is held (another GC run, or the watchdog); not starting"; exit 1; }
	;;
release)
	lease_release || lease_log "not released (no longer held by this pod): enter decides"
	;;
finish)
	sh "$SCRIPTS_DIR/restore.sh"
	restored=$?
	# retention.sh report measures the volume now.
	: >"$STATUS_DIR/done"
	retention=$(cat "$STATUS_DIR/retention" 2>/dev/null || echo "missing")
	# The collector's count: what this run deleted, whatever the driver (an S3 object each).
	swept=$(grep -o '[0-9]* blobs and [0-9]* manifests eligible for deletion' "$STATUS_DIR/gc.out" 2>/dev/null | tail -n 1)
	echo "summary: retention=$retention; collector: ${swept:-no count}"
	[ "$restored" = 0 ] && [ "$retention" = 0 ]
	;;
*) echo "usage: $0 lease|release|finish" >&2; exit 2 ;;
esac
