package registrystack

import (
	"fmt"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/auth"
	"github.com/regstack/registry-stack/gc"
	"github.com/regstack/registry-stack/redis"
	"github.com/regstack/registry-stack/registry"
	"github.com/regstack/registry-stack/storage"
	"github.com/regstack/registry-stack/tlscert"
)

// stackOutputs is what a user needs to log in, trust the CA and push; the password only as a secret.
func stackOutputs(args *Args, namespace pulumi.StringOutput, reg *registry.Registry, cert *tlscert.TLS, route *routeInfo,
	collector *gc.GC, data *storage.Storage, cache *redis.Redis) pulumi.Map {
	host := args.Hostname
	out := pulumi.Map{
		"url":                   pulumi.String("https://" + host),
		"routing":               route.Description,
		"routeName":             route.Name,
		"tlsSecretName":         cert.SecretName,
		"hostname":              pulumi.String(host),
		"namespace":             namespace,
		"username":              reg.Username,
		"password":              pulumi.ToSecret(reg.Password),
		"passwords":             pulumi.ToSecret(reg.Passwords),
		"caCertPem":             cert.CACertPem,
		"dockerLoginCommand":    pulumi.String(DockerLoginCommand(host, args.Accounts[0])),
		"trustCaCommands":       pulumi.String(TrustCACommands(host, args.TLS)),
		"cranePushExample":      pulumi.String(CranePushExample(host, args.Accounts[0])),
		"deploymentName":        reg.DeploymentName,
		"serviceName":           reg.ServiceName,
		"gcCronJobName":         collector.CronJobName,
		"gcWatchdogCronJobName": collector.WatchdogCronJobName,
		"gcLeaseName":           collector.LeaseName,
		"storage":               data.Backend.Description,
	}
	if args.Auth.Token != nil {
		out["tokenRealm"] = pulumi.String("https://" + host + auth.RealmPath)
	}
	if args.Storage.Filesystem != nil {
		out["claimName"], out["volumeName"] = data.ClaimName, data.VolumeName
	}
	if cache != nil {
		out["redisDeploymentName"] = cache.DeploymentName
	}
	return out
}

// DockerLoginCommand logs in without putting the password on a command line.
func DockerLoginCommand(host, username string) string {
	return fmt.Sprintf("pulumi stack output password --show-secrets | docker login %s --username %s --password-stdin", host, username)
}

// TrustCACommands installs the CA where docker, containerd and the OS look for it. With a
// certificate from an existing Secret and no CA given, there is nothing to install: it says so.
func TrustCACommands(host string, t tlscert.Source) string {
	if t.Secret != nil && t.Secret.CACertPEM == "" {
		return strings.Join([]string{
			"# The certificate comes from the Secret tls.secret names and no tls.secret.caCertPem was given:",
			"# clients must already trust its issuer (a public CA, or your PKI's root installed as your PKI documents).",
			"# Set tls.secret.caCertPem to that CA to get the commands that install it here.",
		}, "\n")
	}
	return strings.Join([]string{
		"# docker (per registry host):",
		fmt.Sprintf("sudo mkdir -p /etc/docker/certs.d/%s && pulumi stack output caCertPem | sudo tee /etc/docker/certs.d/%s/ca.crt", host, host),
		"# containerd (config_path = /etc/containerd/certs.d):",
		fmt.Sprintf("sudo mkdir -p /etc/containerd/certs.d/%s && pulumi stack output caCertPem | sudo tee /etc/containerd/certs.d/%s/ca.crt", host, host),
		"# Debian/Ubuntu system trust (curl, crane, Go programs):",
		"pulumi stack output caCertPem | sudo tee /usr/local/share/ca-certificates/registry-stack.crt && sudo update-ca-certificates",
	}, "\n")
}

// CranePushExample copies a public image into the registry with crane.
func CranePushExample(host, username string) string {
	return fmt.Sprintf("pulumi stack output password --show-secrets | crane auth login %s -u %s --password-stdin && crane copy busybox:1.36 %s/library/busybox:1.36", host, username, host)
}

// OutputDescriptions document every output the component can have (the stack exports them under
// the same names; the component provider's schema describes them with these). Always is the set
// present on every stack; the others depend on features.
var OutputDescriptions = map[string]string{
	"url":                   "https://<hostname>: the registry's address.",
	"hostname":              "The DNS name clients use.",
	"namespace":             "The namespace of every namespaced object.",
	"routing":               "The way in: mode, class and controller.",
	"routeName":             "The Ingress or HTTPRoute.",
	"tlsSecretName":         "The kubernetes.io/tls Secret the route serves.",
	"username":              "The admin account.",
	"password":              "The admin account's password (secret).",
	"passwords":             "Every account's password by account (secret).",
	"caCertPem":             "The CA clients trust (empty with an outside certificate and no CA given).",
	"dockerLoginCommand":    "A docker login that keeps the password off the command line.",
	"trustCaCommands":       "Commands that install the CA for docker, containerd and the OS.",
	"cranePushExample":      "Copies a public image into the registry with crane.",
	"deploymentName":        "The registry's Deployment.",
	"serviceName":           "The registry's Service.",
	"gcCronJobName":         "The garbage collection CronJob.",
	"gcWatchdogCronJobName": "The CronJob that restores writes if a GC run dies while read-only.",
	"gcLeaseName":           "The Lease a GC run holds.",
	"storage":               "Where the images are stored.",
	"claimName":             "The data PersistentVolumeClaim (filesystem driver).",
	"volumeName":            "The data PersistentVolume (filesystem driver).",
	"redisDeploymentName":   "The Redis Deployment (cache on).",
	"autoscalerName":        "The HorizontalPodAutoscaler or KEDA ScaledObject (autoscaling on).",
	"metricsServiceNames":   "The metrics Service of the registry and each mirror (monitoring on).",
	"mirrors":               "Each mirror by name: url, hostname, upstream, ttl, account, objects.",
	"mirrorContainerdHosts": "containerd hosts.toml per mirrored upstream, by path (secret when it holds credentials).",
	"mirrorSetupCommands":   "Commands that point docker, containerd and minikube at the mirrors.",
	"mirrorPasswords":       "Each mirror's account password by mirror (secret).",
	"tokenRealm":            "Where clients get tokens (token auth on).",
	"pullSecretNames":       "The kubernetes.io/dockerconfigjson pull Secrets as namespace/name (clusterPull on).",
	"nodeAgentNamespace":    "The node agent's namespace (clusterPull.nodeAgent on).",
}

// AlwaysOutputs are the outputs every stack has, whatever its features.
var AlwaysOutputs = []string{"url", "hostname", "namespace", "routing", "routeName", "tlsSecretName", "username", "password",
	"passwords", "caCertPem", "dockerLoginCommand", "trustCaCommands", "cranePushExample", "deploymentName", "serviceName",
	"gcCronJobName", "gcWatchdogCronJobName", "gcLeaseName", "storage"}
