#!/bin/sh
# The GC watchdog, run every minute by its own CronJob: brings writes back when a GC run died while
# the registry was read-only (its pod evicted, deleted, OOM-killed, its node lost), which would
# otherwise refuse pushes until someone noticed.
#
#   check    (first step) finds the registry read-only while nobody holds the GC lease live,
#            i.e. no collector can be running (lease.sh), takes the lease, and lets the next steps
#            run; otherwise writes $STATUS_DIR/skip and they do nothing.
#   restore  (last step, after flush.sh emptied the cache the dead run may have left stale) puts
#            every replica back to read-write and gives the lease back.
#
# Env: as maintenance.sh, plus SCRIPTS_DIR, STATUS_DIR.
set -u

. "$SCRIPTS_DIR/lease.sh"

log() { echo "$(date -u +%H:%M:%S) watchdog: $*"; }

skip() {
	log "$*"
	: >"$STATUS_DIR/skip"
	exit 0
}

check() {
	lease_read || { log "cannot read lease/$LEASE"; exit 1; }
	tmpl=$(kubectl -n "$NAMESPACE" get deployment "$DEPLOYMENT" -o jsonpath="{.spec.template.metadata.labels.registry-stack\.io/maintenance}") || {
		log "cannot read deployment/$DEPLOYMENT"
		exit 1
	}
	if [ "$tmpl" != read-only ]; then
		skip "the registry accepts writes; nothing to do"
	fi
	if lease_live; then
		skip "read-only, and $lease_holder holds the GC lease (renewed ${lease_age}s ago): a GC run is in progress"
	fi
	if [ -n "$lease_holder" ]; then
		log "read-only, and the GC lease of $lease_holder was last renewed ${lease_age}s ago (it lasts ${LEASE_SECONDS}s): its collector has stopped"
	else
		log "read-only, and nobody holds the GC lease"
	fi
	if ! lease_take; then
		skip "the lease changed meanwhile (a GC run started?); leaving it to its holder"
	fi
	log "took the GC lease; emptying the cache, then restoring writes"
}

restore() {
	[ -f "$STATUS_DIR/skip" ] && exit 0
	flush=$(cat "$STATUS_DIR/flush" 2>/dev/null || echo "missing")
	if [ "${CACHE_ENABLED:-true}" = true ] && [ "$flush" != 0 ]; then
		# A stale cache would answer "blob exists" for blobs the dead run deleted: keep the
		# registry read-only and let the lease expire; the next run tries again.
		log "the cache flush failed ($flush); the registry stays read-only until the next run"
		exit 1
	fi
	sh "$SCRIPTS_DIR/maintenance.sh" leave || exit 1
	lease_release
	log "writes restored"
}

case "${1:-}" in
check) check ;;
restore) restore ;;
*) echo "usage: $0 check|restore" >&2; exit 2 ;;
esac
