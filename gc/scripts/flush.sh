#!/bin/sh
# Empties the registry's blob-descriptor cache after GC: the collector deletes blobs but not their
# cache entries, and a stale "blob exists" answer makes a re-pushed image reference a deleted layer.
# Always exits 0 and records the result in $STATUS_DIR/flush.
#
# Env: REDIS_HOST, REDIS_PORT, REDISCLI_AUTH (read by redis-cli), STATUS_DIR.
set -u

for attempt in 1 2 3 4 5; do
	reply=$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" FLUSHDB 2>&1)
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
