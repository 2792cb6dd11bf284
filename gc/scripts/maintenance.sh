#!/bin/sh
# Puts every registry replica into read-only mode ("enter") or back to read-write ("leave").
#
# Why a rollout: distribution reads storage.maintenance.readonly only at start, so the switch is a
# rolling restart of the Deployment (maxUnavailable 0: pulls keep working throughout). "enter"
# returns only when no pod of the old, writable template is left (not even a terminating one that
# is still draining an upload), because GC must never run beside a writer.
#
# Both hold the GC lease (lease.sh): "enter" takes it before anything else and fails while someone
# else holds it; "leave" touches nothing unless this pod still holds it, so that a run whose lease
# expired cannot make the registry writable under the next run's collector.
#
# Env: NAMESPACE, DEPLOYMENT, CONTAINER, POD_SELECTOR, ROLLOUT_TIMEOUT (seconds), POD_NAME, and the
# lease's (lease.sh).
set -eu

. "$SCRIPTS_DIR/lease.sh"
readonly_env="REGISTRY_STORAGE_MAINTENANCE_READONLY"
timeout="${ROLLOUT_TIMEOUT:-600}"

log() { echo "$(date -u +%H:%M:%S) maintenance: $*"; }

# The GC's field manager. pulumi-kubernetes takes over, on its next update of an object, every
# field owned by a manager whose name starts with "kubectl" (the default of kubectl patch), and
# then drops those it does not declare: a `pulumi up` during GC would make the registry writable.
# Fields of another manager it leaves alone (server-side apply).
field_manager="registry-stack-gc"

patch() {
	kubectl -n "$NAMESPACE" patch deployment "$DEPLOYMENT" --type=strategic --field-manager="$field_manager" -p "$1" >/dev/null
}

# live_pods SELECTOR: pods matching SELECTOR that may still run (terminating ones included;
# evicted or completed pods stay listed until deleted but run nothing).
live_pods() {
	kubectl -n "$NAMESPACE" get pods -l "$1" --field-selector=status.phase!=Failed,status.phase!=Succeeded -o name
}

# wait_pods SELECTOR: waits until no live pod matches SELECTOR.
wait_pods() {
	deadline=$(( $(date +%s) + timeout ))
	while :; do
		# A failed listing is not "no pod left" (leave runs where set -e does not apply).
		left=$(live_pods "$1") || return 1
		[ -z "$left" ] && return 0
		if [ "$(date +%s)" -ge "$deadline" ]; then
			log "timed out after ${timeout}s waiting for: $(echo "$left" | tr '\n' ' ')"
			return 1
		fi
		sleep 2
	done
}

rollout() {
	kubectl -n "$NAMESPACE" rollout status deployment "$DEPLOYMENT" --timeout="${timeout}s"
}

enter() {
	# The lease also keeps out Jobs created by hand, which concurrencyPolicy Forbid does not cover.
	if ! lease_acquire; then
		log "the GC lease is held (another GC run, or the watchdog restoring writes); not touching the registry"
		exit 1
	fi
	log "switching deployment/$DEPLOYMENT to read-only"
	# From here on, any failure (the patch itself included) must not leave the registry read-only.
	trap 'log "failed to enter read-only mode; restoring writes"; leave && lease_release; exit 1' EXIT
	patch "{\"spec\":{\"template\":{\"metadata\":{\"labels\":{\"$mode_label\":\"read-only\"}},\"spec\":{\"containers\":[{\"name\":\"$CONTAINER\",\"env\":[{\"name\":\"$readonly_env\",\"value\":\"{\\\"enabled\\\":true}\"}]}]}}}}"
	rollout
	wait_pods "$POD_SELECTOR,$mode_label!=read-only"
	trap - EXIT
	: >"$STATUS_DIR/read-only"
	log "every replica is read-only"
}

leave() {
	# Renewing proves this pod still holds the lease, and keeps it for the next few seconds.
	if ! lease_renew; then
		log "$POD_NAME no longer holds the GC lease; not touching the registry"
		return 1
	fi
	log "switching deployment/$DEPLOYMENT back to read-write"
	# Explicit: in the "enter" trap leave runs in an && list, where set -e does not apply.
	patch "{\"spec\":{\"template\":{\"metadata\":{\"labels\":{\"$mode_label\":null}},\"spec\":{\"containers\":[{\"name\":\"$CONTAINER\",\"env\":[{\"name\":\"$readonly_env\",\"\$patch\":\"delete\"}]}]}}}}" || return 1
	rollout || return 1
	wait_pods "$POD_SELECTOR,$mode_label=read-only" || return 1
	log "every replica accepts writes"
}

case "${1:-}" in
enter) enter ;;
leave) leave ;;
*) echo "usage: $0 enter|leave" >&2; exit 2 ;;
esac
