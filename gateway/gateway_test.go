package gateway

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/kube"
	"github.com/regstack/registry-stack/internal/testutil"
	"github.com/regstack/registry-stack/routing"
)

const (
	tGateway    = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
	tRoute      = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
	tGrant      = "kubernetes:gateway.networking.k8s.io/v1beta1:ReferenceGrant"
	tMiddleware = "kubernetes:traefik.io/v1alpha1:Middleware"
	tComponent  = "registry-stack:index:Gateway"
)

func runGateway(t *testing.T, args *GatewayArgs) (*testutil.Mocks, error) {
	t.Helper()
	return testutil.Run(t, nil, func(ctx *pulumi.Context) error {
		_, err := NewGateway(ctx, "reg", args)
		return err
	})
}

func createdArgs() *GatewayArgs {
	return &GatewayArgs{
		Namespace: pulumi.String("images"),
		Routes: []kube.Route{{Name: "reg", Hostnames: []string{"registry.example.com", "registry.internal"},
			ServiceName: pulumi.String("registry-svc"), ServicePort: 5000}},
		Create:        &routing.CreatedGateway{ClassName: "traefik", ListenerPort: 8443},
		Controller:    routing.ControllerTraefik,
		SourceRanges:  []string{"10.0.0.0/8"},
		TLSSecretName: pulumi.String("reg-tls"),
	}
}

func existingArgs(section string) *GatewayArgs {
	a := createdArgs()
	a.Create = nil
	a.Existing = &routing.ExistingGateway{Name: pulumi.String("edge"), Namespace: pulumi.String("platform"), SectionName: section}
	return a
}

func TestCreatedGatewayHasOnlyHTTPSListeners(t *testing.T) {
	m, err := runGateway(t, createdArgs())
	if err != nil {
		t.Fatal(err)
	}
	gw := m.Get(t, tGateway, "reg")
	if got := gw.String("spec", "gatewayClassName"); got != "traefik" {
		t.Errorf("gatewayClassName = %q", got)
	}
	listeners := gw.Lookup("spec", "listeners").([]any)
	if len(listeners) != 2 {
		t.Fatalf("%d listeners, want one per hostname (2)", len(listeners))
	}
	for i, host := range []string{"registry.example.com", "registry.internal"} {
		for _, c := range []struct {
			path []any
			want any
		}{
			{[]any{"name"}, ListenerName(i)},
			{[]any{"protocol"}, "HTTPS"},
			{[]any{"port"}, 8443.0},
			{[]any{"hostname"}, host},
			{[]any{"tls", "mode"}, "Terminate"},
			{[]any{"tls", "certificateRefs", 0, "name"}, "reg-tls"},
			{[]any{"tls", "certificateRefs", 0, "kind"}, "Secret"},
			{[]any{"allowedRoutes", "namespaces", "from"}, "Same"},
		} {
			if got := gw.Lookup(append([]any{"spec", "listeners", i}, c.path...)...); got != c.want {
				t.Errorf("listener %d %v = %#v, want %#v", i, c.path, got, c.want)
			}
		}
	}
	if got := gw.String("metadata", "annotations", waitForAnnotation); got != "condition=Programmed" {
		t.Errorf("Gateway waitFor = %q, want condition=Programmed (up must not succeed before the Gateway serves)", got)
	}
	route := m.Get(t, tRoute, "reg")
	for _, c := range []struct {
		path []any
		want any
	}{
		{[]any{"spec", "parentRefs", 0, "name"}, "reg"},
		{[]any{"spec", "parentRefs", 0, "kind"}, "Gateway"},
		{[]any{"spec", "parentRefs", 0, "group"}, Group},
		{[]any{"spec", "rules", 0, "matches", 0, "path", "type"}, "PathPrefix"},
		{[]any{"spec", "rules", 0, "matches", 0, "path", "value"}, "/"},
		{[]any{"spec", "rules", 0, "backendRefs", 0, "name"}, "registry-svc"},
		{[]any{"spec", "rules", 0, "backendRefs", 0, "port"}, 5000.0},
		{[]any{"spec", "rules", 0, "filters", 0, "type"}, "ExtensionRef"},
		{[]any{"spec", "rules", 0, "filters", 0, "extensionRef", "group"}, "traefik.io"},
		{[]any{"spec", "rules", 0, "filters", 0, "extensionRef", "kind"}, "Middleware"},
		{[]any{"spec", "rules", 0, "filters", 0, "extensionRef", "name"}, "reg-gateway-allow"},
		{[]any{"metadata", "annotations", waitForAnnotation}, RouteWaitFor("reg")},
	} {
		if got := route.Lookup(c.path...); got != c.want {
			t.Errorf("HTTPRoute %v = %#v, want %#v", c.path, got, c.want)
		}
	}
	if got := fmt.Sprint(route.Lookup("spec", "hostnames")); got != "[registry.example.com registry.internal]" {
		t.Errorf("HTTPRoute hostnames = %s", got)
	}
	var conds []string
	if err := json.Unmarshal([]byte(RouteWaitFor("reg")), &conds); err != nil || len(conds) != 2 {
		t.Fatalf("route waitFor %s is not a JSON list of two conditions: %v", RouteWaitFor("reg"), err)
	}
	for i, cond := range []string{"Accepted", "ResolvedRefs"} {
		want := `jsonpath={.status.parents[?(@.parentRef.name=="reg")].conditions[?(@.type=="` + cond + `")].status}=True`
		if conds[i] != want {
			t.Errorf("route waitFor %q, want %q (this parent's %s=True)", conds[i], want, cond)
		}
	}
	if got := fmt.Sprint(m.Get(t, tMiddleware, "reg-gateway-allow").Lookup("spec", "ipAllowList", "sourceRange")); got != "[10.0.0.0/8]" {
		t.Errorf("Middleware ranges = %s", got)
	}
	if n := len(m.OfType(tGrant)); n != 0 {
		t.Errorf("%d ReferenceGrants for a Gateway in the same namespace", n)
	}
	parent := "urn:pulumi:unit::registry-stack::" + tComponent + "::reg"
	for _, res := range m.Resources() {
		if res.Type != tComponent && (res.Parent != parent || !strings.HasPrefix(res.Name, "reg")) {
			t.Errorf("%s/%s parent %q: want the component, named after it", res.Type, res.Name, res.Parent)
		}
	}
}

func TestExistingGatewayGetsAGrantAndTheNamedListener(t *testing.T) {
	m, err := runGateway(t, existingArgs("websecure"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(m.OfType(tGateway)); n != 1 { // the read of the existing one, nothing created
		t.Errorf("%d Gateway registrations, want only the read of the existing Gateway", n)
	}
	route := m.Get(t, tRoute, "reg")
	for _, c := range []struct {
		path []any
		want any
	}{
		{[]any{"spec", "parentRefs", 0, "name"}, "edge"},
		{[]any{"spec", "parentRefs", 0, "namespace"}, "platform"},
		{[]any{"spec", "parentRefs", 0, "sectionName"}, "websecure"},
		{[]any{"metadata", "annotations", waitForAnnotation}, RouteWaitFor("edge")},
	} {
		if got := route.Lookup(c.path...); got != c.want {
			t.Errorf("HTTPRoute %v = %#v, want %#v", c.path, got, c.want)
		}
	}
	grant := m.Get(t, tGrant, "reg-tls")
	for _, c := range []struct {
		path []any
		want any
	}{
		{[]any{"metadata", "namespace"}, "images"},
		{[]any{"spec", "from", 0, "group"}, Group},
		{[]any{"spec", "from", 0, "kind"}, "Gateway"},
		{[]any{"spec", "from", 0, "namespace"}, "platform"},
		{[]any{"spec", "to", 0, "group"}, ""},
		{[]any{"spec", "to", 0, "kind"}, "Secret"},
		{[]any{"spec", "to", 0, "name"}, "reg-tls"},
	} {
		if got := grant.Lookup(c.path...); got != c.want {
			t.Errorf("ReferenceGrant %v = %#v, want %#v", c.path, got, c.want)
		}
	}
	if n := len(grant.Lookup("spec", "to").([]any)); n != 1 {
		t.Errorf("ReferenceGrant grants %d objects, want only the TLS Secret", n)
	}
}

// A route on a plain-HTTP listener (or one that does not exist) is refused before it is created,
// naming the key: credentials would cross the network in clear text.
func TestExistingGatewayListenerMustBeHTTPS(t *testing.T) {
	for section, want := range map[string]string{
		"web":     `listener "web" is HTTP`,
		"missing": "it has: websecure (HTTPS), web (HTTP)",
	} {
		m, err := runGateway(t, existingArgs(section))
		if err == nil {
			t.Errorf("section %s accepted", section)
			continue
		}
		for _, s := range []string{`config "routing.gateway.existing.sectionName"`, want} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("section %s: error lacks %q: %v", section, s, err)
			}
		}
		if n := len(m.OfType(tRoute)) + len(m.OfType(tGrant)); n != 0 {
			t.Errorf("section %s: the route or the ReferenceGrant was registered anyway", section)
		}
	}
}

func TestOtherControllerGetsNoTraefikObjects(t *testing.T) {
	a := createdArgs()
	a.Controller, a.SourceRanges = routing.ControllerOther, nil
	m, err := runGateway(t, a)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(m.OfType(tMiddleware)); n != 0 {
		t.Errorf("%d Middlewares for controller other", n)
	}
	if f := m.Get(t, tRoute, "reg").Lookup("spec", "rules", 0, "filters"); f != nil {
		t.Errorf("route filters = %v, want none", f)
	}
}

func TestRequiredArgs(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*GatewayArgs)
	}{
		{"no routes", func(a *GatewayArgs) { a.Routes = nil }},
		{"no hostnames", func(a *GatewayArgs) { a.Routes[0].Hostnames = nil }},
		{"no namespace", func(a *GatewayArgs) { a.Namespace = nil }},
		{"no service", func(a *GatewayArgs) { a.Routes[0].ServiceName = nil }},
		{"no TLS secret", func(a *GatewayArgs) { a.TLSSecretName = nil }},
		{"no gateway", func(a *GatewayArgs) { a.Create = nil }},
		{"both gateways", func(a *GatewayArgs) {
			a.Existing = &routing.ExistingGateway{Name: pulumi.String("x"), Namespace: pulumi.String("y"), SectionName: "z"}
		}},
		{"unknown controller", func(a *GatewayArgs) { a.Controller = "nginx" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := createdArgs()
			c.edit(a)
			m, err := runGateway(t, a)
			if err == nil {
				t.Fatal("accepted")
			}
			if n := len(m.Resources()); n != 0 {
				t.Errorf("%d resources registered before the args were rejected", n)
			}
		})
	}
}

func TestCreatedGatewayListensForEveryRouteAndEachRouteHasItsHTTPRoute(t *testing.T) {
	a := createdArgs()
	a.Routes = append(a.Routes, kube.Route{Name: "reg-mirror-hub", Hostnames: []string{"hub.example.com"},
		ServiceName: pulumi.String("mirror-svc"), ServicePort: 5000})
	m, err := runGateway(t, a)
	if err != nil {
		t.Fatal(err)
	}
	listeners := m.Get(t, tGateway, "reg").Lookup("spec", "listeners").([]any)
	var hosts []string
	for _, l := range listeners {
		hosts = append(hosts, l.(map[string]any)["hostname"].(string))
	}
	if got := strings.Join(hosts, " "); got != "registry.example.com registry.internal hub.example.com" {
		t.Errorf("listener hostnames = %s, want every route's, the registry's first (listener names unchanged)", got)
	}
	if n := len(m.OfType(tRoute)); n != 2 {
		t.Fatalf("%d HTTPRoutes, want one per route", n)
	}
	mirror := m.Get(t, tRoute, "reg-mirror-hub")
	if got := fmt.Sprint(mirror.Lookup("spec", "hostnames")); got != "[hub.example.com]" {
		t.Errorf("mirror route hostnames = %s", got)
	}
	if got := mirror.String("spec", "rules", 0, "backendRefs", 0, "name"); got != "mirror-svc" {
		t.Errorf("mirror route backend = %q", got)
	}
	if got := mirror.String("spec", "rules", 0, "filters", 0, "extensionRef", "name"); got != "reg-gateway-allow" {
		t.Errorf("mirror route filter = %q, want the shared source-range Middleware", got)
	}
	if n := len(m.OfType(tMiddleware)); n != 1 {
		t.Errorf("%d Middlewares, want one shared by the routes", n)
	}
}

// An existing Gateway without a configured controller: the stack reads its GatewayClass and
// enforces the source ranges when Traefik serves it.
func TestExistingGatewayOfTraefikClassEnforcesRanges(t *testing.T) {
	a := existingArgs("websecure")
	a.Controller = routing.ControllerOfGatewayClass
	m, err := runGateway(t, a)
	if err != nil {
		t.Fatal(err)
	}
	classes := m.OfType("kubernetes:gateway.networking.k8s.io/v1:GatewayClass")
	if len(classes) != 1 || !classes[0].Read {
		t.Fatalf("GatewayClass registrations %+v, want one read", classes)
	}
	if n := len(m.OfType(tMiddleware)); n != 1 {
		t.Errorf("%d Middlewares for a Gateway of Traefik's class with source ranges, want 1", n)
	}
	if f := m.Get(t, tRoute, "reg").Lookup("spec", "rules", 0, "filters"); f == nil {
		t.Errorf("the route has no filter: the source ranges would not be enforced")
	}
}

// Another controller behind the existing Gateway's class: source ranges are refused, naming the
// key, and nothing is routed; without ranges the route attaches.
func TestExistingGatewayOfOtherClassRefusesRanges(t *testing.T) {
	a := existingArgs("websecure")
	a.Existing.Name = pulumi.String("edge-eg")
	a.Controller = routing.ControllerOfGatewayClass
	m, err := runGateway(t, a)
	if err == nil {
		t.Fatal("source ranges accepted on a Gateway whose class another controller serves")
	}
	for _, s := range []string{`config "routing.sourceRanges"`, "10.0.0.0/8", "example.com/eg", "routing.gateway.controller=other"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q: %v", s, err)
		}
	}
	if n := len(m.OfType(tRoute)) + len(m.OfType(tGrant)); n != 0 {
		t.Errorf("the route or the ReferenceGrant was registered anyway")
	}

	a.SourceRanges = nil
	m, err = runGateway(t, a)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(m.OfType(tMiddleware)); n != 0 {
		t.Errorf("%d Middlewares without source ranges", n)
	}
	if got := m.Get(t, tRoute, "reg").String("spec", "parentRefs", 0, "name"); got != "edge-eg" {
		t.Errorf("route parent = %q", got)
	}
}

// A route's own path (the token realm) is a rule of its own before "/", to its own Service, and
// carries the same source-range filter: the realm is no way around the ranges.
func TestRoutePathsGetTheirOwnRuleWithTheFilters(t *testing.T) {
	a := createdArgs()
	a.Routes[0].Paths = []kube.Path{{Prefix: "/auth", ServiceName: pulumi.String("reg-auth"), ServicePort: 5001}}
	m, err := runGateway(t, a)
	if err != nil {
		t.Fatal(err)
	}
	r := m.Get(t, tRoute, "reg")
	for i, want := range []struct {
		prefix, service string
	}{{"/auth", "reg-auth"}, {"/", "registry-svc"}} {
		if got := r.String("spec", "rules", i, "matches", 0, "path", "value"); got != want.prefix {
			t.Errorf("rule %d matches %q, want %q", i, got, want.prefix)
		}
		if got := r.String("spec", "rules", i, "backendRefs", 0, "name"); got != want.service {
			t.Errorf("rule %d goes to %q, want %q", i, got, want.service)
		}
		if r.Lookup("spec", "rules", i, "filters") == nil {
			t.Errorf("rule %d has no source-range filter", i)
		}
	}
}
