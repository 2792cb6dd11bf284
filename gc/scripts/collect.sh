#!/bin/sh
# Runs the registry's garbage collector against the registry's storage, whatever its driver. Always
# exits 0 and records the collector's exit code in $STATUS_DIR/gc, so that the restore step runs
# whatever happens here.
#
# Fencing: the collector runs only while this pod's lease sidecar keeps renewing the GC lease
# ($STATUS_DIR/renewed, at most $FENCE_SECONDS old) and has seen no writable replica
# ($STATUS_DIR/abort). Otherwise it is stopped: FENCE_SECONDS is shorter than the lease, so the
# collector is gone before anyone may take the lease over and make the registry writable again.
#
# Env: CONFIG, STATUS_DIR, FENCE_SECONDS.
set -u

log() { echo "$(date -u +%H:%M:%S) collect: $*"; }

# unfenced: empty when the collector may run, else why not.
unfenced() {
	if [ -f "$STATUS_DIR/abort" ]; then
		cat "$STATUS_DIR/abort"
		return
	fi
	last=$(cat "$STATUS_DIR/renewed" 2>/dev/null || echo 0)
	age=$(( $(date -u +%s) - last ))
	[ "$age" -le "$FENCE_SECONDS" ] || echo "the GC lease was last renewed ${age}s ago (limit ${FENCE_SECONDS}s)"
}

why=$(unfenced)
if [ -n "$why" ]; then
	log "not collecting: $why"
	echo "fenced: $why" >"$STATUS_DIR/gc"
	: >"$STATUS_DIR/collected"
	exit 0
fi

log "registry garbage-collect --delete-untagged"
registry garbage-collect --delete-untagged "$CONFIG" >"$STATUS_DIR/gc.out" 2>&1 &
pid=$!
fenced=
while kill -0 "$pid" 2>/dev/null; do
	why=$(unfenced)
	if [ -n "$why" ]; then
		fenced=$why
		log "stopping the collector: $why"
		kill -TERM "$pid" 2>/dev/null
		sleep 2
		kill -KILL "$pid" 2>/dev/null
		break
	fi
	sleep 1
done
wait "$pid"
rc=$?
cat "$STATUS_DIR/gc.out"
echo
# A registry that never stored an image has no repositories (or no blobs) root yet, and the
# collector fails on it with "Path not found: /docker/registry/v2/repositories" (or ".../blobs").
# Nothing exists under a missing root, so there is nothing to collect. (The registry creates them on
# the first push; an object store has no directories to create beforehand.)
if [ "$rc" != 0 ] && grep -Eq '(failed to mark|error enumerating blobs): [a-z0-9]+: Path not found: /docker/registry/v2/(repositories|blobs)$' "$STATUS_DIR/gc.out"; then
	log "nothing stored yet, nothing to collect"
	rc=0
fi
if [ -n "$fenced" ]; then
	log "stopped: $fenced"
	echo "fenced: $fenced" >"$STATUS_DIR/gc"
else
	log "exit code $rc"
	echo "$rc" >"$STATUS_DIR/gc"
fi
: >"$STATUS_DIR/collected"
exit 0
