package ingress

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/kube"
	"github.com/regstack/registry-stack/internal/testutil"
	"github.com/regstack/registry-stack/routing"
)

const (
	tIngress    = "kubernetes:networking.k8s.io/v1:Ingress"
	tMiddleware = "kubernetes:traefik.io/v1alpha1:Middleware"
	tComponent  = "registry-stack:index:Ingress"
)

func runIngress(t *testing.T, name string, args *IngressArgs) (*testutil.Mocks, string) {
	t.Helper()
	var ingName string
	m := testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		ing, err := NewIngress(ctx, name, args)
		if err != nil {
			return err
		}
		ingName, _ = testutil.Resolve(t, ing.IngressName)
		return nil
	})
	return m, ingName
}

func fullArgs(ctrl routing.Controller) *IngressArgs {
	return &IngressArgs{
		Namespace: pulumi.String("images"),
		Routes: []kube.Route{{Name: "reg", Hostnames: []string{"registry.example.com", "registry.internal"},
			ServiceName: pulumi.String("registry-svc"), ServicePort: 5000}},
		ClassName:     string(ctrl),
		Controller:    ctrl,
		SourceRanges:  []string{"10.0.0.0/8", "192.168.1.0/24"},
		TLSSecretName: pulumi.String("reg-tls"),
		// Used by the traefik controller only.
		TraefikEntryPoint: "websecure",
	}
}

func TestTraefikNeedsItsEntryPoint(t *testing.T) {
	a := fullArgs(routing.ControllerTraefik)
	a.TraefikEntryPoint = ""
	if err := a.validate(); err == nil || !strings.Contains(err.Error(), "TraefikEntryPoint") {
		t.Errorf("traefik without an entry point: %v, want TraefikEntryPoint named", err)
	}
}

func TestNginxAnnotations(t *testing.T) {
	ann := Annotations(routing.ControllerNginx, "", nil)
	if got := ann[nginxPrefix+"proxy-body-size"]; got != "0" {
		t.Errorf("proxy-body-size = %q, want \"0\" (the 1 MiB default gives 413 on layer uploads)", got)
	}
	for _, k := range []string{"proxy-read-timeout", "proxy-send-timeout"} {
		n, err := strconv.Atoi(ann[nginxPrefix+k])
		if err != nil || n < 600 {
			t.Errorf("%s = %q, want seconds >= 600 for big blobs", k, ann[nginxPrefix+k])
		}
	}
	if got := ann[nginxPrefix+"proxy-request-buffering"]; got != "off" {
		t.Errorf("proxy-request-buffering = %q, want off (uploads would be buffered on the controller's disk)", got)
	}
	for _, k := range []string{"ssl-redirect", "force-ssl-redirect"} {
		if got := ann[nginxPrefix+k]; got != "true" {
			t.Errorf("%s = %q, want true (HTTPS forced explicitly)", k, got)
		}
	}
	for _, k := range []string{"whitelist-source-range", "allowlist-source-range"} {
		if v, ok := ann[nginxPrefix+k]; ok {
			t.Errorf("%s = %q without source ranges: it must be absent to allow every source", k, v)
		}
	}
	ann = Annotations(routing.ControllerNginx, "", []string{"10.0.0.0/8", "192.168.1.0/24"})
	if got := ann[NginxAllowlistAnnotation]; got != "10.0.0.0/8,192.168.1.0/24" {
		t.Errorf("allowlist-source-range = %q, want the ranges comma-separated", got)
	}
	if got := ann[nginxPrefix+"whitelist-source-range"]; got != "10.0.0.0/8,192.168.1.0/24" {
		t.Errorf("whitelist-source-range = %q: controllers before 1.9 know only this name", got)
	}
	for k := range ann {
		if !strings.HasPrefix(k, nginxPrefix) {
			t.Errorf("nginx Ingress carries %s, which ingress-nginx ignores", k)
		}
	}
}

// A Traefik Ingress carries only Traefik annotations: routers on the TLS entry point alone, and no
// nginx annotation that looks like protection Traefik does not give.
func TestTraefikAnnotations(t *testing.T) {
	ann := Annotations(routing.ControllerTraefik, "websecure", []string{"10.0.0.0/8"})
	want := map[string]string{TraefikEntryPointsAnnotation: "websecure", TraefikTLSAnnotation: "true"}
	if fmt.Sprint(ann) != fmt.Sprint(want) {
		t.Errorf("Traefik annotations = %v, want exactly %v (the Middleware reference is added with the Middleware)", ann, want)
	}
	if got := Annotations(routing.ControllerTraefik, "https", nil)[TraefikEntryPointsAnnotation]; got != "https" {
		t.Errorf("entry point = %q, want the configured one", got)
	}
	if ann := Annotations(routing.ControllerOther, "websecure", []string{"10.0.0.0/8"}); len(ann) != 0 {
		t.Errorf("controller other gets annotations %v, want none (nothing the stack cannot stand behind)", ann)
	}
}

func TestTraefikSourceRangesUseAnIPAllowListMiddleware(t *testing.T) {
	m, _ := runIngress(t, "reg", fullArgs(routing.ControllerTraefik))
	mw := m.Get(t, tMiddleware, "reg-ingress-allow")
	if got := fmt.Sprint(mw.Lookup("spec", "ipAllowList", "sourceRange")); got != "[10.0.0.0/8 192.168.1.0/24]" {
		t.Errorf("Middleware sourceRange = %s, want the configured ranges", got)
	}
	if got := mw.String("metadata", "namespace"); got != "images" {
		t.Errorf("Middleware namespace = %q", got)
	}
	ing := m.Get(t, tIngress, "reg")
	if got := ing.String("metadata", "annotations", TraefikMiddlewaresAnnotation); got != "images-reg-ingress-allow@kubernetescrd" {
		t.Errorf("router.middlewares = %q, want images-reg-ingress-allow@kubernetescrd", got)
	}
	for k := range ing.Lookup("metadata", "annotations").(map[string]any) {
		if strings.HasPrefix(k, nginxPrefix) {
			t.Errorf("Traefik Ingress carries nginx annotation %s", k)
		}
	}

	// Without source ranges: no Middleware, no reference.
	a := fullArgs(routing.ControllerTraefik)
	a.SourceRanges = nil
	m, _ = runIngress(t, "reg", a)
	if n := len(m.OfType(tMiddleware)); n != 0 {
		t.Errorf("%d Middlewares without source ranges", n)
	}
	if got := m.Get(t, tIngress, "reg").String("metadata", "annotations", TraefikMiddlewaresAnnotation); got != "" {
		t.Errorf("router.middlewares = %q without source ranges", got)
	}
}

func TestNginxAndOtherControllersCreateNoMiddleware(t *testing.T) {
	for _, ctrl := range []routing.Controller{routing.ControllerNginx, routing.ControllerOther} {
		m, _ := runIngress(t, "reg", fullArgs(ctrl))
		if n := len(m.OfType(tMiddleware)); n != 0 {
			t.Errorf("%s: %d Traefik Middlewares", ctrl, n)
		}
		ann := m.Get(t, tIngress, "reg").Lookup("metadata", "annotations").(map[string]any)
		_, hasRanges := ann[NginxAllowlistAnnotation]
		if hasRanges != (ctrl == routing.ControllerNginx) {
			t.Errorf("%s: allowlist annotation present = %v", ctrl, hasRanges)
		}
	}
}

func TestIngressRoutesEveryHostToTheService(t *testing.T) {
	m, name := runIngress(t, "reg", fullArgs(routing.ControllerTraefik))
	ing := m.Get(t, tIngress, "reg")
	for _, c := range []struct {
		path []any
		want any
	}{
		{[]any{"metadata", "name"}, "reg"},
		{[]any{"metadata", "namespace"}, "images"},
		{[]any{"spec", "ingressClassName"}, "traefik"},
		{[]any{"spec", "rules", 0, "host"}, "registry.example.com"},
		{[]any{"spec", "rules", 0, "http", "paths", 0, "path"}, "/"},
		{[]any{"spec", "rules", 0, "http", "paths", 0, "pathType"}, "Prefix"},
		{[]any{"spec", "rules", 0, "http", "paths", 0, "backend", "service", "name"}, "registry-svc"},
		{[]any{"spec", "rules", 0, "http", "paths", 0, "backend", "service", "port", "number"}, 5000.0},
		{[]any{"spec", "rules", 1, "host"}, "registry.internal"},
		{[]any{"spec", "rules", 1, "http", "paths", 0, "backend", "service", "name"}, "registry-svc"},
		{[]any{"spec", "tls", 0, "secretName"}, "reg-tls"},
	} {
		if got := ing.Lookup(c.path...); got != c.want {
			t.Errorf("Ingress %v = %#v, want %#v", c.path, got, c.want)
		}
	}
	if got := fmt.Sprint(ing.Lookup("spec", "tls", 0, "hosts")); got != "[registry.example.com registry.internal]" {
		t.Errorf("Ingress TLS hosts = %s, want every routed name", got)
	}
	if n := len(ing.Lookup("spec", "rules").([]any)); n != 2 {
		t.Errorf("%d rules, want one per DNS name (2)", n)
	}
	if name != "reg" {
		t.Errorf("IngressName output = %q", name)
	}
	parent := "urn:pulumi:unit::registry-stack::" + tComponent + "::reg"
	for _, res := range m.Resources() {
		if res.Type == tComponent {
			continue
		}
		if res.Parent != parent || !strings.HasPrefix(res.Name, "reg") {
			t.Errorf("%s/%s parent %q: want the component, named after it", res.Type, res.Name, res.Parent)
		}
	}
}

func TestRequiredArgs(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*IngressArgs)
	}{
		{"no routes", func(a *IngressArgs) { a.Routes = nil }},
		{"no hostnames", func(a *IngressArgs) { a.Routes[0].Hostnames = nil }},
		{"no namespace", func(a *IngressArgs) { a.Namespace = nil }},
		{"no service", func(a *IngressArgs) { a.Routes[0].ServiceName = nil }},
		{"no port", func(a *IngressArgs) { a.Routes[0].ServicePort = 0 }},
		{"no class", func(a *IngressArgs) { a.ClassName = "" }},
		{"no TLS secret", func(a *IngressArgs) { a.TLSSecretName = nil }},
		{"unknown controller", func(a *IngressArgs) { a.Controller = "haproxy" }},
		{"route name used twice", func(a *IngressArgs) {
			a.Routes = append(a.Routes, kube.Route{Name: "reg", Hostnames: []string{"other.example.com"}, ServiceName: pulumi.String("s"), ServicePort: 5000})
		}},
		{"hostname routed twice", func(a *IngressArgs) {
			a.Routes = append(a.Routes, kube.Route{Name: "other", Hostnames: []string{"registry.internal"}, ServiceName: pulumi.String("s"), ServicePort: 5000})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := fullArgs(routing.ControllerNginx)
			c.edit(a)
			m, err := testutil.Run(t, nil, func(ctx *pulumi.Context) error {
				_, err := NewIngress(ctx, "reg", a)
				return err
			})
			if err == nil {
				t.Fatal("accepted")
			}
			if n := len(m.Resources()); n != 0 {
				t.Errorf("%d resources registered before the args were rejected", n)
			}
		})
	}
}

func TestEachRouteGetsItsOwnIngressAndSharesTheMiddleware(t *testing.T) {
	a := fullArgs(routing.ControllerTraefik)
	a.Routes = append(a.Routes, kube.Route{Name: "reg-mirror-hub", Hostnames: []string{"hub.example.com"},
		ServiceName: pulumi.String("mirror-svc"), ServicePort: 5000})
	m, name := runIngress(t, "reg", a)
	if name != "reg" {
		t.Errorf("IngressName = %q, want the first route's", name)
	}
	if n := len(m.OfType(tIngress)); n != 2 {
		t.Fatalf("%d Ingresses, want one per route", n)
	}
	if n := len(m.OfType(tMiddleware)); n != 1 {
		t.Errorf("%d Middlewares, want one shared by the routes", n)
	}
	mirror := m.Get(t, tIngress, "reg-mirror-hub")
	for _, c := range []struct {
		path []any
		want string
	}{
		{[]any{"spec", "rules", 0, "host"}, "hub.example.com"},
		{[]any{"spec", "rules", 0, "http", "paths", 0, "backend", "service", "name"}, "mirror-svc"},
		{[]any{"spec", "tls", 0, "secretName"}, "reg-tls"},
		{[]any{"metadata", "annotations", TraefikEntryPointsAnnotation}, "websecure"},
	} {
		if got := mirror.String(c.path...); got != c.want {
			t.Errorf("mirror Ingress %v = %q, want %q", c.path, got, c.want)
		}
	}
	if got := fmt.Sprint(mirror.Lookup("spec", "tls", 0, "hosts")); got != "[hub.example.com]" {
		t.Errorf("mirror Ingress tls hosts = %s, want only its own host", got)
	}
	if got := mirror.String("metadata", "annotations", TraefikMiddlewaresAnnotation); !strings.Contains(got, "reg-ingress-allow") {
		t.Errorf("mirror Ingress middlewares = %q, want the shared source-range Middleware", got)
	}
	if got := fmt.Sprint(m.Get(t, tIngress, "reg").Lookup("spec", "tls", 0, "hosts")); strings.Contains(got, "hub.example.com") {
		t.Errorf("registry Ingress tls hosts = %s: the mirror's host belongs to the mirror's Ingress", got)
	}
}

// TestEveryIngressSkipsTheProviderAwait: the provider's Ingress await can record a stale object as
// an update's result (objectAnnotations says why); every Ingress, on every controller, with and
// without the Middleware (whose reference is added in an apply), opts out of it.
func TestEveryIngressSkipsTheProviderAwait(t *testing.T) {
	for _, ctrl := range []routing.Controller{routing.ControllerNginx, routing.ControllerTraefik, routing.ControllerOther} {
		for _, ranges := range [][]string{nil, {"10.0.0.0/8"}} {
			a := fullArgs(ctrl)
			a.SourceRanges = ranges
			a.Routes = append(a.Routes, kube.Route{Name: "mirror", Hostnames: []string{"mirror.example.com"},
				ServiceName: pulumi.String("mirror-svc"), ServicePort: 5000})
			m, _ := runIngress(t, "reg", a)
			for _, name := range []string{"reg", "mirror"} {
				if got := m.Get(t, tIngress, name).String("metadata", "annotations", SkipAwaitAnnotation); got != "true" {
					t.Errorf("%s, ranges %v: Ingress %s has %s = %q, want \"true\"", ctrl, ranges, name, SkipAwaitAnnotation, got)
				}
			}
		}
	}
}
