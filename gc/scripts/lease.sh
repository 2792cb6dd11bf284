#!/bin/sh
# The GC lease (coordination.k8s.io/v1 Lease $LEASE): whoever switches the registry to read-only
# holds it first, and gives it back only after writes are restored. Its holder renews it every
# $RENEW_SECONDS; a lease not renewed for $LEASE_SECONDS has expired, and only then may someone
# else (the watchdog, the next GC run) take it over. A GC pod that cannot renew stops its collector
# after $FENCE_SECONDS (< $LEASE_SECONDS, see collect.sh), so no collector runs once a lease has
# expired, whatever killed or cut off its pod.
#
# Sourced for its functions by maintenance.sh, restore.sh and watchdog.sh; run as
# `lease.sh keep` it is the GC pod's sidecar: it renews the lease while this pod holds it, records
# each renewal in $STATUS_DIR/renewed (read by the collector), and, while the collector may run,
# writes $STATUS_DIR/abort when a writable registry pod shows up.
#
# Env: NAMESPACE, LEASE, LEASE_SECONDS, POD_NAME, STATUS_DIR; for keep also RENEW_SECONDS,
# DEPLOYMENT, POD_SELECTOR.

mode_label="registry-stack.io/maintenance"

lease_log() { echo "$(date -u +%H:%M:%S) lease: $*"; }

# stamp: sets stamp_epoch and stamp_micro (the same second, as epoch seconds and as the API's
# MicroTime). The renewal time the collector trusts is the one written into the lease, never a
# later one: a slow API call must not stretch the lease for this pod only.
stamp() {
	set -- $(date -u '+%s %Y-%m-%dT%H:%M:%S')
	stamp_epoch=$1
	stamp_micro="$2.000000Z"
}

# No --request-timeout: kubectl then ignores the in-cluster config (it counts as an explicit
# setting) and dials localhost:8080. A call that hangs is harmless: the collector checks the age of
# the last renewal (the time written into the lease) on its own, every second.
lease_patch() {
	kubectl -n "$NAMESPACE" patch lease "$LEASE" --type=json --field-manager=registry-stack-gc -p "$1" >/dev/null
}

# epoch TIME: seconds since 1970 of a time as the API prints it (2026-12-02T14:00:05.000000Z).
epoch() { date -u -d "$(echo "$1" | sed 's/T/ /; s/\..*//; s/Z$//')" +%s; }

# record_renewal: tells the collector (collect.sh) when the lease was last renewed. Written to a
# temporary file and renamed, so that the collector never reads a half-written one.
record_renewal() {
	echo "$stamp_epoch" >"$STATUS_DIR/renewed.tmp" && mv "$STATUS_DIR/renewed.tmp" "$STATUS_DIR/renewed"
}

# lease_read: sets lease_rv, lease_holder and lease_age (seconds since the last renewal; empty
# when nobody holds it).
lease_read() {
	line=$(kubectl -n "$NAMESPACE" get lease "$LEASE" -o jsonpath='{.metadata.resourceVersion}|{.spec.holderIdentity}|{.spec.renewTime}') || return 1
	lease_rv=${line%%|*}
	rest=${line#*|}
	lease_holder=${rest%%|*}
	renew=${rest#*|}
	lease_age=
	if [ -n "$lease_holder" ] && [ -n "$renew" ]; then
		lease_age=$(( $(date -u +%s) - $(epoch "$renew") ))
	fi
}

# lease_live: the lease just read is held and was renewed within LEASE_SECONDS.
lease_live() { [ -n "$lease_holder" ] && [ -n "$lease_age" ] && [ "$lease_age" -le "$LEASE_SECONDS" ]; }

# lease_take: takes the lease just read, provided nobody changed it since (the resourceVersion
# test makes the API server refuse the patch otherwise).
lease_take() {
	stamp
	lease_patch "[{\"op\":\"test\",\"path\":\"/metadata/resourceVersion\",\"value\":\"$lease_rv\"},{\"op\":\"add\",\"path\":\"/spec/holderIdentity\",\"value\":\"$POD_NAME\"},{\"op\":\"add\",\"path\":\"/spec/acquireTime\",\"value\":\"$stamp_micro\"},{\"op\":\"add\",\"path\":\"/spec/renewTime\",\"value\":\"$stamp_micro\"}]"
}

# lease_acquire: takes the lease when it is free or expired; fails while someone else holds it.
lease_acquire() {
	lease_read || return 1
	if lease_live && [ "$lease_holder" != "$POD_NAME" ]; then
		lease_log "held by $lease_holder (renewed ${lease_age}s ago)"
		return 1
	fi
	lease_take || return 1
	record_renewal
	lease_log "acquired by $POD_NAME"
}

# lease_renew: renews the lease, only if this pod still holds it.
lease_renew() {
	stamp
	lease_patch "[{\"op\":\"test\",\"path\":\"/spec/holderIdentity\",\"value\":\"$POD_NAME\"},{\"op\":\"add\",\"path\":\"/spec/renewTime\",\"value\":\"$stamp_micro\"}]" 2>/dev/null
}

# lease_release: gives the lease back, only if this pod still holds it.
lease_release() {
	if lease_patch "[{\"op\":\"test\",\"path\":\"/spec/holderIdentity\",\"value\":\"$POD_NAME\"},{\"op\":\"remove\",\"path\":\"/spec/holderIdentity\"},{\"op\":\"remove\",\"path\":\"/spec/acquireTime\"},{\"op\":\"remove\",\"path\":\"/spec/renewTime\"}]"; then
		lease_log "released"
	else
		lease_log "not released: $POD_NAME no longer holds it"
		return 1
	fi
}

# writable_replicas: why the registry may accept writes now (empty: every replica is read-only).
writable_replicas() {
	tmpl=$(kubectl -n "$NAMESPACE" get deployment "$DEPLOYMENT" -o jsonpath="{.spec.template.metadata.labels.registry-stack\.io/maintenance}") || { echo "deployment/$DEPLOYMENT unreadable"; return 0; }
	if [ "$tmpl" != read-only ]; then
		echo "deployment/$DEPLOYMENT's pod template is no longer read-only"
		return 0
	fi
	pods=$(kubectl -n "$NAMESPACE" get pods -l "$POD_SELECTOR,$mode_label!=read-only" --field-selector=status.phase!=Failed,status.phase!=Succeeded -o name) || { echo "registry pods unreadable"; return 0; }
	[ -n "$pods" ] && echo "writable registry pods: $(echo "$pods" | tr '\n' ' ')"
	return 0
}

keep() {
	trap 'exit 0' TERM INT
	held=false
	while :; do
		if lease_renew; then
			record_renewal
			[ "$held" = true ] || lease_log "renewing every ${RENEW_SECONDS}s"
			held=true
			# Between "every replica is read-only" and the end of the collector, a writable pod
			# (a replaced Deployment, a hand-made patch) must stop the collector.
			if [ -f "$STATUS_DIR/read-only" ] && [ ! -f "$STATUS_DIR/collected" ]; then
				why=$(writable_replicas)
				if [ -n "$why" ]; then
					lease_log "abort: $why"
					echo "$why" >"$STATUS_DIR/abort"
				fi
			fi
		elif [ "$held" = true ]; then
			lease_log "renewal failed (lost, released, or the API unreachable)"
			held=false
		fi
		sleep "$RENEW_SECONDS" &
		wait $!
	done
}

# Run, not sourced (when sourced, $0 is the caller and $1 the caller's argument).
if [ "${0##*/}" = lease.sh ] && [ "${1:-}" = keep ]; then
	set -u
	keep
fi
