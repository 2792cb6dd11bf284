package registrystack

import (
	"fmt"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/gc"
	"github.com/regstack/registry-stack/redis"
	"github.com/regstack/registry-stack/registry"
	"github.com/regstack/registry-stack/stackconfig"
	"github.com/regstack/registry-stack/storage"
	"github.com/regstack/registry-stack/tlscert"
)

// stackOutputs is what a user needs to log in, trust the CA and push; the password only as a secret.
func stackOutputs(args *Args, reg *registry.Registry, cert *tlscert.TLS, route *routeInfo,
	collector *gc.GC, data *storage.Storage, cache *redis.Redis) pulumi.Map {
	host := args.Hostname
	out := pulumi.Map{
		"url":                   pulumi.String("https://" + host),
		"routing":               pulumi.String(route.Description),
		"routeName":             route.Name,
		"tlsSecretName":         cert.SecretName,
		"hostname":              pulumi.String(host),
		"namespace":             pulumi.String(args.Namespace),
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
		"storage":               pulumi.String(data.Backend.Description),
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
func TrustCACommands(host string, t stackconfig.TLS) string {
	if t.Secret != nil && t.Secret.CACertPEM == "" {
		return strings.Join([]string{
			fmt.Sprintf("# The certificate comes from Secret %s (tlsSource=secret) and no tlsCaCertPem was given:", t.Secret.Name),
			"# clients must already trust its issuer (a public CA, or your PKI's root installed as your PKI documents).",
			"# Set tlsCaCertPem to that CA to get the commands that install it here.",
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
