#!/bin/sh
# Last step of a GC run: puts the registry back into read-write mode and gives the GC lease back,
# then fails the Job if the collector or the cache flush failed, so that a broken GC is visible in
# the Job status. When this pod lost the lease (its renewals stopped for longer than the lease),
# it touches nothing: the watchdog, or the run that took the lease over, restores writes.
#
# Env: as maintenance.sh, plus SCRIPTS_DIR, STATUS_DIR, CACHE_ENABLED (true|false).
set -u

. "$SCRIPTS_DIR/lease.sh"
sh "$SCRIPTS_DIR/maintenance.sh" leave
left=$?
[ "$left" = 0 ] && lease_release
gc=$(cat "$STATUS_DIR/gc" 2>/dev/null || echo "missing")
flush=$(cat "$STATUS_DIR/flush" 2>/dev/null || echo "missing")
if [ "${CACHE_ENABLED:-true}" != true ]; then
	flush=0
fi
echo "summary: garbage-collect=$gc cache-flush=$flush read-write-restored=$([ "$left" = 0 ] && echo yes || echo NO)"
[ "$left" = 0 ] && [ "$gc" = 0 ] && [ "$flush" = 0 ]
