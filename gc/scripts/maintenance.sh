#!/bin/sh
# Puts every registry replica into read-only mode ("enter") or back to read-write ("leave").
#
# Why a rollout: distribution reads storage.maintenance.readonly only at start, so the switch is a
# rolling restart of the Deployment (maxUnavailable 0: pulls keep working throughout). "enter"
# returns only when no pod of the old, writable template is left (not even a terminating one that
# is still draining an upload), because GC must never run beside a writer.
#
# Env: NAMESPACE, DEPLOYMENT, CONTAINER, POD_SELECTOR, ROLLOUT_TIMEOUT (seconds), and for "enter"
# GC_SELECTOR and POD_NAME (this GC pod).
set -eu

mode_label="registry-stack.io/maintenance"
readonly_env="REGISTRY_STORAGE_MAINTENANCE_READONLY"
timeout="${ROLLOUT_TIMEOUT:-600}"

log() { echo "$(date -u +%H:%M:%S) maintenance: $*"; }

patch() {
	kubectl -n "$NAMESPACE" patch deployment "$DEPLOYMENT" --type=strategic -p "$1" >/dev/null
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
		left=$(live_pods "$1")
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
	# concurrencyPolicy Forbid does not cover Jobs created by hand from the CronJob: a second run
	# must neither collect beside the first nor restore writes while the first is collecting.
	runs=$(live_pods "$GC_SELECTOR")
	others=$(echo "$runs" | grep -v -e "^pod/$POD_NAME\$" -e '^$' || true)
	if [ -n "$others" ]; then
		log "another GC run is in progress ($(echo "$others" | tr '\n' ' ')); not touching the registry"
		exit 1
	fi
	log "switching deployment/$DEPLOYMENT to read-only"
	# From here on, any failure (the patch itself included) must not leave the registry read-only.
	trap 'log "failed to enter read-only mode; restoring writes"; leave || true; exit 1' EXIT
	patch "{\"spec\":{\"template\":{\"metadata\":{\"labels\":{\"$mode_label\":\"read-only\"}},\"spec\":{\"containers\":[{\"name\":\"$CONTAINER\",\"env\":[{\"name\":\"$readonly_env\",\"value\":\"{\\\"enabled\\\":true}\"}]}]}}}}"
	rollout
	wait_pods "$POD_SELECTOR,$mode_label!=read-only"
	trap - EXIT
	log "every replica is read-only"
}

leave() {
	log "switching deployment/$DEPLOYMENT back to read-write"
	patch "{\"spec\":{\"template\":{\"metadata\":{\"labels\":{\"$mode_label\":null}},\"spec\":{\"containers\":[{\"name\":\"$CONTAINER\",\"env\":[{\"name\":\"$readonly_env\",\"\$patch\":\"delete\"}]}]}}}}"
	rollout
	wait_pods "$POD_SELECTOR,$mode_label=read-only"
	log "every replica accepts writes"
}

case "${1:-}" in
enter) enter ;;
leave) leave ;;
*) echo "usage: $0 enter|leave" >&2; exit 2 ;;
esac
