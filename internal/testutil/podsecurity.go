package testutil

import (
	"fmt"
	"slices"
)

// Pod Security Standards (https://kubernetes.io/docs/concepts/security/pod-security-standards/,
// the "latest" version as of Kubernetes v1.33): the checks the API server's PodSecurity admission
// makes of a pod spec, on the spec as the mocks recorded it.

// baselineCapabilities may be added under baseline; restricted allows only NET_BIND_SERVICE.
var baselineCapabilities = []string{"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}

// restrictedVolumes are the volume types restricted allows.
var restrictedVolumes = []string{"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}

// safeSysctls are the sysctls baseline allows.
var safeSysctls = []string{"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}

// PodSecurityViolations lists what in spec (a pod spec as recorded) the given level ("baseline" or
// "restricted") forbids, one line per container and check; empty means admitted.
func PodSecurityViolations(spec map[string]any, level string) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	restricted := level == "restricted"
	for _, k := range []string{"hostNetwork", "hostPID", "hostIPC"} {
		if spec[k] == true {
			bad("pod: %s", k)
		}
	}
	podSC, _ := spec["securityContext"].(map[string]any)
	for _, s := range asSlice(mapAt(podSC, "sysctls")) {
		if name := fmt.Sprint(mapAt(s, "name")); !slices.Contains(safeSysctls, name) {
			bad("pod: sysctl %s", name)
		}
	}
	for _, v := range asSlice(spec["volumes"]) {
		vol, _ := v.(map[string]any)
		for k := range vol {
			if k == "name" {
				continue
			}
			if k == "hostPath" || (restricted && !slices.Contains(restrictedVolumes, k)) {
				bad("pod: volume %v of type %s", vol["name"], k)
			}
		}
	}
	podNonRoot := mapAt(podSC, "runAsNonRoot") == true
	podSeccomp := fmt.Sprint(mapAt(podSC, "seccompProfile", "type"))
	if podSeccomp == "Unconfined" {
		bad("pod: seccompProfile Unconfined")
	}
	if n, ok := mapAt(podSC, "runAsUser").(float64); ok && n == 0 && restricted {
		bad("pod: runAsUser 0")
	}
	for _, list := range []string{"initContainers", "containers", "ephemeralContainers"} {
		for _, c := range asSlice(spec[list]) {
			ctr, _ := c.(map[string]any)
			name := fmt.Sprintf("%s %v", list, ctr["name"])
			sc, _ := ctr["securityContext"].(map[string]any)
			if mapAt(sc, "privileged") == true {
				bad("%s: privileged", name)
			}
			for _, p := range asSlice(ctr["ports"]) {
				if hp, ok := mapAt(p, "hostPort").(float64); ok && hp != 0 {
					bad("%s: hostPort %v", name, hp)
				}
			}
			if pm := mapAt(sc, "procMount"); pm != nil && pm != "Default" {
				bad("%s: procMount %v", name, pm)
			}
			seccomp := fmt.Sprint(mapAt(sc, "seccompProfile", "type"))
			if seccomp == "Unconfined" {
				bad("%s: seccompProfile Unconfined", name)
			}
			adds := asSlice(mapAt(sc, "capabilities", "add"))
			for _, a := range adds {
				capName := fmt.Sprint(a)
				if !slices.Contains(baselineCapabilities, capName) || (restricted && capName != "NET_BIND_SERVICE") {
					bad("%s: adds capability %s", name, capName)
				}
			}
			if !restricted {
				continue
			}
			if mapAt(sc, "allowPrivilegeEscalation") != false {
				bad("%s: allowPrivilegeEscalation not false", name)
			}
			if nr := mapAt(sc, "runAsNonRoot"); nr == false || (nr == nil && !podNonRoot) {
				bad("%s: runAsNonRoot not true", name)
			}
			if n, ok := mapAt(sc, "runAsUser").(float64); ok && n == 0 {
				bad("%s: runAsUser 0", name)
			}
			if seccomp != "RuntimeDefault" && seccomp != "Localhost" && podSeccomp != "RuntimeDefault" && podSeccomp != "Localhost" {
				bad("%s: no seccompProfile RuntimeDefault or Localhost", name)
			}
			if !slices.Contains(asSlice(mapAt(sc, "capabilities", "drop")), any("ALL")) {
				bad("%s: capabilities do not drop ALL", name)
			}
		}
	}
	return out
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// mapAt walks nested maps; nil when a step is missing.
func mapAt(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}
