#!/bin/sh
# Runs the registry's garbage collector against the registry's storage, whatever its driver. Always
# exits 0 and records the collector's exit code in $STATUS_DIR/gc, so that the restore step runs
# whatever happens here.
#
# Env: CONFIG, STATUS_DIR.
set -u

echo "$(date -u +%H:%M:%S) collect: registry garbage-collect --delete-untagged"
# The collector's output is shown as it comes and kept to read its error; its exit code travels
# through a file because the pipe's status is tee's.
{
	registry garbage-collect --delete-untagged "$CONFIG" 2>&1
	echo $? >"$STATUS_DIR/gc.rc"
} | tee "$STATUS_DIR/gc.out"
rc=$(cat "$STATUS_DIR/gc.rc" 2>/dev/null || echo 1)
echo
# A registry that never stored an image has no repositories (or no blobs) root yet, and the
# collector fails on it with "Path not found: /docker/registry/v2/repositories" (or ".../blobs").
# Nothing exists under a missing root, so there is nothing to collect. (The registry creates them on
# the first push; an object store has no directories to create beforehand.)
if [ "$rc" != 0 ] && grep -Eq '(failed to mark|error enumerating blobs): [a-z0-9]+: Path not found: /docker/registry/v2/(repositories|blobs)$' "$STATUS_DIR/gc.out"; then
	echo "$(date -u +%H:%M:%S) collect: nothing stored yet, nothing to collect"
	rc=0
fi
echo "$(date -u +%H:%M:%S) collect: exit code $rc"
echo "$rc" >"$STATUS_DIR/gc"
exit 0
