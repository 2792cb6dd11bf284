#!/bin/sh
# Runs the registry's garbage collector against the shared storage. Always exits 0 and records the
# collector's exit code in $STATUS_DIR/gc, so that the restore step runs whatever happens here.
#
# Env: CONFIG, DATA_DIR, STATUS_DIR.
set -u

# On a registry that never stored an image the collector fails with "Path not found:
# /docker/registry/v2/repositories" (then ".../blobs"); the registry itself creates both on the
# first push.
if ! mkdir -p "$DATA_DIR/docker/registry/v2/repositories" "$DATA_DIR/docker/registry/v2/blobs"; then
	echo "collect: cannot create the storage layout under $DATA_DIR/docker/registry/v2" >&2
	echo 1 >"$STATUS_DIR/gc"
	exit 0
fi
echo "$(date -u +%H:%M:%S) collect: registry garbage-collect --delete-untagged"
registry garbage-collect --delete-untagged "$CONFIG"
rc=$?
echo "$(date -u +%H:%M:%S) collect: exit code $rc"
echo "$rc" >"$STATUS_DIR/gc"
exit 0
