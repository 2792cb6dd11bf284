#!/bin/sh
# Empties the registry's blob-descriptor cache after GC: the collector deletes blobs but not their
# cache entries, and a stale "blob exists" answer makes a re-pushed image reference a deleted layer.
# Always exits 0 and records the result in $STATUS_DIR/flush. Skipped when the watchdog found
# nothing to restore ($STATUS_DIR/skip).
#
# Env: REDIS_HOST, REDIS_PORT, REDIS_USER (an ACL user that may only FLUSHDB, on database 0),
# REDISCLI_AUTH (its password, read by redis-cli), STATUS_DIR.
set -u

if [ -f "$STATUS_DIR/skip" ]; then
	exit 0
fi

for attempt in 1 2 3 4 5; do
	reply=$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --user "$REDIS_USER" FLUSHDB 2>&1)
	if [ "$reply" = "OK" ]; then
		echo "$(date -u +%H:%M:%S) flush: cache emptied"
		echo 0 >"$STATUS_DIR/flush"
		exit 0
	fi
	echo "$(date -u +%H:%M:%S) flush: attempt $attempt failed: $reply" >&2
	sleep 3
done
echo 1 >"$STATUS_DIR/flush"
exit 0
