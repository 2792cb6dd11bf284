package auth

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	policyv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/policy/v1"
	"github.com/pulumi/pulumi-tls/sdk/v5/go/tls"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/kube"
	"github.com/regstack/registry-stack/placement"
)

const (
	// TokenCAKey is the registry's config Secret's key of the trusted signing certificates.
	TokenCAKey = "token-ca.pem"
	// serverUID runs the token server (no file of its own is written).
	serverUID = 65532
	// signingKeyBits: docker_auth signs with RS256; 3072-bit RSA is good past 2030 (NIST SP 800-57).
	signingKeyBits = 3072
	// A signing certificate only carries its key to the registry, which does not check its dates;
	// ten years keeps it out of the way of anyone who does.
	signingCertHours = 10 * 365 * 24
)

// TokenParams are distribution's auth.token parameters.
type TokenParams struct {
	Realm          string `yaml:"realm"`
	Service        string `yaml:"service"`
	Issuer         string `yaml:"issuer"`
	RootCertBundle string `yaml:"rootcertbundle"`
}

// TokenServer is cesanta/docker_auth: a Deployment, its Service, config Secret, PDB and
// NetworkPolicy, and the signing keys.
type TokenServer struct {
	pulumi.ResourceState

	// DeploymentName and ServiceName name the token server's Deployment and Service (ServerPort).
	DeploymentName pulumi.StringOutput `pulumi:"deploymentName"`
	ServiceName    pulumi.StringOutput `pulumi:"serviceName"`
}

// ServerLabels are the token server pods' labels of the registry instance name. Their own app
// name: the registry's selector (app registry, its instance) must never take one for a replica.
func ServerLabels(name string) map[string]string {
	return kube.Labels("docker-auth", name+"-auth", "token-server")
}

// ServerSelector selects the token server pods of the registry instance name.
func ServerSelector(name string) map[string]string {
	return kube.Selector("docker-auth", name+"-auth")
}

// Issuer is the issuer of the tokens of the registry instance name.
func Issuer(name string) string { return "registry-stack/" + name }

// newTokenMode registers the token server of the registry instance name (its resources named
// name-auth...) and returns the registry's side: the token section, the trusted certificates, and
// the Deployment the registry's must wait for (on a switch to token mode, tokens are served
// before any registry pod asks for one). A key is trusted (SigningKeys) before it signs (SignWith),
// each its own `pulumi up`, so no order between the two rollouts is needed.
func newTokenMode(ctx *pulumi.Context, name string, t *Token, args ModeArgs, opts ...pulumi.ResourceOption) (*Mode, error) {
	if args.Namespace == nil || args.Hostname == "" {
		return nil, fmt.Errorf("auth: %s: token mode needs Namespace and Hostname", name)
	}
	if errs := t.Validate("Token", args.Accounts.Names); len(errs) > 0 {
		return nil, fmt.Errorf("auth: %s: %w", name, errors.Join(errs...))
	}
	srvName := name + "-auth"
	comp := &TokenServer{}
	if err := ctx.RegisterComponentResource("registry-stack:index:TokenServer", srvName, comp, opts...); err != nil {
		return nil, fmt.Errorf("auth: register component %q: %w", srvName, err)
	}
	parent := pulumi.Parent(comp)
	labels := kube.StringMap(ServerLabels(name))
	selector := kube.StringMap(ServerSelector(name))

	var certs []pulumi.StringOutput
	var signingKey, signingCert pulumi.StringOutput
	for _, k := range t.SigningKeys {
		key, err := tls.NewPrivateKey(ctx, srvName+"-key-"+k, &tls.PrivateKeyArgs{
			// RSA: docker_auth's key id of an EC key hashes the curve's base point instead of the
			// key, and the registry refuses every token it signs (auth's tests check the kid).
			Algorithm: pulumi.String("RSA"), RsaBits: pulumi.Int(signingKeyBits),
		}, parent)
		if err != nil {
			return nil, fmt.Errorf("auth: signing key %s: %w", k, err)
		}
		cert, err := tls.NewSelfSignedCert(ctx, srvName+"-cert-"+k, &tls.SelfSignedCertArgs{
			PrivateKeyPem:       key.PrivateKeyPem,
			ValidityPeriodHours: pulumi.Int(signingCertHours),
			AllowedUses:         pulumi.ToStringArray([]string{"digital_signature"}),
			Subject:             &tls.SelfSignedCertSubjectArgs{CommonName: pulumi.String(Issuer(name) + " " + k), Organization: pulumi.String("registry-stack")},
		}, parent)
		if err != nil {
			return nil, fmt.Errorf("auth: signing certificate %s: %w", k, err)
		}
		certs = append(certs, cert.CertPem)
		if k == t.signer() {
			signingKey, signingCert = key.PrivateKeyPem, cert.CertPem
		}
	}
	// In key name order: choosing another signer must not change the bundle (and roll the registry).
	bundle := pulumi.ToStringArrayOutput(certs).ApplyT(func(pems []string) string {
		byName := map[string]string{}
		for i, k := range t.SigningKeys {
			byName[k] = pems[i]
		}
		var out strings.Builder
		for _, k := range slices.Sorted(maps.Keys(byName)) {
			out.WriteString(byName[k])
		}
		return out.String()
	}).(pulumi.StringOutput)

	config := pulumi.ToStringArrayOutput(args.Accounts.Lines).ApplyT(func(lines []string) (string, error) {
		return t.ServerConfig(ServerConfigInput{Issuer: Issuer(name), Lines: lines})
	}).(pulumi.StringOutput)
	service, err := corev1.NewService(ctx, srvName, &corev1.ServiceArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(srvName), Namespace: args.Namespace, Labels: labels},
		Spec: &corev1.ServiceSpecArgs{
			Selector: selector,
			Ports: corev1.ServicePortArray{&corev1.ServicePortArgs{
				Name: pulumi.String("http"), Port: pulumi.Int(ServerPort), TargetPort: pulumi.String("http"),
			}},
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("auth: token server service: %w", err)
	}
	// Where NetworkPolicy is enforced, only the token port is reachable (from the route).
	if _, err := networkingv1.NewNetworkPolicy(ctx, srvName, &networkingv1.NetworkPolicyArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(srvName), Namespace: args.Namespace, Labels: labels},
		// Static users need nothing outside the pod: no egress at all. ExtraConfig's backends
		// (LDAP, OIDC ...) need theirs, so then egress is not restricted.
		Spec: kube.PortOnlyPolicy(selector, ServerPort, t.ExtraConfig == ""),
	}, parent); err != nil {
		return nil, fmt.Errorf("auth: token server network policy: %w", err)
	}
	if t.Replicas > 1 {
		if _, err := policyv1.NewPodDisruptionBudget(ctx, srvName, &policyv1.PodDisruptionBudgetArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(srvName), Namespace: args.Namespace, Labels: labels},
			Spec:     kube.OneAtATime(selector),
		}, parent); err != nil {
			return nil, fmt.Errorf("auth: token server pod disruption budget: %w", err)
		}
	}

	mode := &Mode{
		Section: Section{"token": TokenParams{
			Realm:          "https://" + args.Hostname + RealmPath,
			Service:        args.Hostname,
			Issuer:         Issuer(name),
			RootCertBundle: args.ConfigDir + "/" + TokenCAKey,
		}},
		Files: map[string]pulumi.StringOutput{TokenCAKey: bundle},
		Route: &kube.Path{Prefix: RealmPath, ServiceName: service.Metadata.Name().Elem(), ServicePort: ServerPort},
	}
	// A new Secret (its name carries the content's hash) for every change, read only by the pods
	// of the rollout it starts: docker_auth reloads a changed config file in place, restarting its
	// listener under requests the route is still sending.
	checksum := kube.Checksum(pulumi.Sprintf("%s\n%s\n%s", config, signingKey, signingCert))
	secretName := pulumi.Sprintf("%s-%s", srvName, checksum.ApplyT(func(sum string) string { return sum[:10] }).(pulumi.StringOutput))
	secret, err := corev1.NewSecret(ctx, srvName, &corev1.SecretArgs{
		Metadata:  &metav1.ObjectMetaArgs{Name: secretName, Namespace: args.Namespace, Labels: labels},
		Type:      pulumi.String("Opaque"),
		Immutable: pulumi.Bool(true),
		StringData: pulumi.StringMap{
			"auth_config.yml": pulumi.ToSecret(config).(pulumi.StringOutput),
			"signing.key":     pulumi.ToSecret(signingKey).(pulumi.StringOutput),
			"signing.crt":     signingCert,
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("auth: token server secret: %w", err)
	}
	podSpec, err := ServerPodSpec(t, secret.Metadata.Name().Elem(), ServerSelector(name), args.Placement)
	if err != nil {
		return nil, err
	}
	podMeta := &metav1.ObjectMetaArgs{Labels: labels, Annotations: pulumi.StringMap{
		kube.ChecksumAnnotation: checksum,
	}}
	if err := placement.ApplyPodMetadata(podMeta, args.Placement); err != nil {
		return nil, fmt.Errorf("auth: token server pod template: %w", err)
	}
	deployment, err := appsv1.NewDeployment(ctx, srvName, &appsv1.DeploymentArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(srvName), Namespace: args.Namespace, Labels: labels},
		Spec: &appsv1.DeploymentSpecArgs{
			Replicas: pulumi.Int(t.Replicas),
			Selector: &metav1.LabelSelectorArgs{MatchLabels: selector},
			// A new pod is Ready before an old one goes: logins never find no server.
			Strategy: &appsv1.DeploymentStrategyArgs{
				Type:          pulumi.String("RollingUpdate"),
				RollingUpdate: &appsv1.RollingUpdateDeploymentArgs{MaxUnavailable: pulumi.Int(0), MaxSurge: pulumi.Int(1)},
			},
			Template: &corev1.PodTemplateSpecArgs{Metadata: podMeta, Spec: podSpec},
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("auth: token server deployment: %w", err)
	}
	comp.DeploymentName = deployment.Metadata.Name().Elem()
	comp.ServiceName = service.Metadata.Name().Elem()
	mode.DependsOn = []pulumi.Resource{deployment}
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"deploymentName": comp.DeploymentName,
		"serviceName":    comp.ServiceName,
	}); err != nil {
		return nil, fmt.Errorf("auth: register outputs: %w", err)
	}
	return mode, nil
}

// ServerPodSpec is the token server's pod: docker_auth reading its config Secret, restricted, its
// replicas spread over nodes, with place added.
func ServerPodSpec(t *Token, configSecretName pulumi.StringInput, selector map[string]string, place *placement.Spec) (*corev1.PodSpecArgs, error) {
	spec := &corev1.PodSpecArgs{
		AutomountServiceAccountToken: pulumi.Bool(false),
		SecurityContext:              kube.PodSecurityContext(serverUID),
		Containers: corev1.ContainerArray{&corev1.ContainerArgs{
			Name:            pulumi.String("token-server"),
			Image:           pulumi.String(t.Image),
			ImagePullPolicy: pulumi.String("IfNotPresent"),
			// Logs to stderr only: by default it also writes files to /tmp, and exits at start on a
			// read-only root filesystem.
			Args: pulumi.ToStringArray([]string{"--logtostderr", serverConfigFile}),
			Ports: corev1.ContainerPortArray{&corev1.ContainerPortArgs{
				Name: pulumi.String("http"), ContainerPort: pulumi.Int(ServerPort),
			}},
			// docker_auth has no health endpoint; / answers 200 once the server serves.
			ReadinessProbe: &corev1.ProbeArgs{
				HttpGet:       &corev1.HTTPGetActionArgs{Path: pulumi.String("/"), Port: pulumi.String("http")},
				PeriodSeconds: pulumi.Int(2), FailureThreshold: pulumi.Int(3),
			},
			LivenessProbe: &corev1.ProbeArgs{
				TcpSocket:           &corev1.TCPSocketActionArgs{Port: pulumi.String("http")},
				InitialDelaySeconds: pulumi.Int(5), PeriodSeconds: pulumi.Int(10), FailureThreshold: pulumi.Int(6),
			},
			// Ingress controllers still send requests to a terminating pod until they see it go:
			// keep serving a few seconds first (the image has no shell; the kubelet sleeps).
			Lifecycle: &corev1.LifecycleArgs{PreStop: &corev1.LifecycleHandlerArgs{
				Sleep: &corev1.SleepActionArgs{Seconds: pulumi.Int(5)},
			}},
			// Its bcrypt check of a login is the only real work.
			Resources:       kube.Resources("20m", "32Mi", "128Mi"),
			SecurityContext: kube.ContainerSecurityContext(),
			VolumeMounts: corev1.VolumeMountArray{&corev1.VolumeMountArgs{
				Name: pulumi.String("config"), MountPath: pulumi.String(serverConfigDir), ReadOnly: pulumi.Bool(true),
			}},
		}},
		Volumes: corev1.VolumeArray{&corev1.VolumeArgs{Name: pulumi.String("config"), Secret: &corev1.SecretVolumeSourceArgs{
			SecretName: configSecretName, DefaultMode: pulumi.Int(0o440),
		}}},
	}
	spread := &corev1.TopologySpreadConstraintArgs{
		MaxSkew: pulumi.Int(1), TopologyKey: pulumi.String("kubernetes.io/hostname"),
		WhenUnsatisfiable: pulumi.String("ScheduleAnyway"),
		LabelSelector:     &metav1.LabelSelectorArgs{MatchLabels: kube.StringMap(selector)},
	}
	spec.TopologySpreadConstraints = corev1.TopologySpreadConstraintArray{spread}
	if err := placement.ApplyPodSpec(spec, nil, place); err != nil {
		return nil, fmt.Errorf("auth: token server pod spec: %w", err)
	}
	return spec, nil
}
