#!/bin/sh
# Last step of a GC run: always puts the registry back into read-write mode, then fails the Job if
# the collector or the cache flush failed, so that a broken GC is visible in the Job status.
#
# Env: as maintenance.sh, plus SCRIPTS_DIR, STATUS_DIR, CACHE_ENABLED (true|false).
set -u

sh "$SCRIPTS_DIR/maintenance.sh" leave
left=$?
gc=$(cat "$STATUS_DIR/gc" 2>/dev/null || echo "missing")
flush=$(cat "$STATUS_DIR/flush" 2>/dev/null || echo "missing")
if [ "${CACHE_ENABLED:-true}" != true ]; then
	flush=0
fi
echo "summary: garbage-collect=$gc cache-flush=$flush read-write-restored=$([ "$left" = 0 ] && echo yes || echo NO)"
[ "$left" = 0 ] && [ "$gc" = 0 ] && [ "$flush" = 0 ]
