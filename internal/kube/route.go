package kube

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Route is one way in through an Ingress or a Gateway: hostnames sent to one Service (the
// registry, or a mirror). The route components make one route object per Route.
type Route struct {
	// Name names the route object (Ingress, HTTPRoute); unique within the stack.
	Name string
	// Hostnames are routed (each gets a rule), the primary first.
	Hostnames []string
	// ServiceName and ServicePort are the backend.
	ServiceName pulumi.StringInput
	ServicePort int
	// Paths are path prefixes of the same hostnames sent to other Services (the token server's
	// realm); the longest prefix wins, the rest goes to ServiceName.
	Paths []Path
}

// Path sends one path prefix of a route's hostnames to its own Service.
type Path struct {
	// Prefix is matched element by element (/auth matches /auth and /auth/x, never /authx).
	Prefix      string
	ServiceName pulumi.StringInput
	ServicePort int
}

// ValidateRoutes checks the routes a route component was given: at least one, each complete,
// names and hostnames unique across them.
func ValidateRoutes(component string, routes []Route) error {
	if len(routes) == 0 {
		return fmt.Errorf("%s: at least one route is required", component)
	}
	names, hosts := map[string]bool{}, map[string]bool{}
	for _, r := range routes {
		if r.Name == "" || len(r.Hostnames) == 0 || r.ServiceName == nil || r.ServicePort == 0 {
			return fmt.Errorf("%s: route %q: Name, Hostnames, ServiceName and ServicePort are required", component, r.Name)
		}
		if names[r.Name] {
			return fmt.Errorf("%s: route name %q is used twice", component, r.Name)
		}
		names[r.Name] = true
		for _, h := range r.Hostnames {
			if hosts[h] {
				return fmt.Errorf("%s: hostname %q is routed twice", component, h)
			}
			hosts[h] = true
		}
	}
	return nil
}

// AllHostnames are the hostnames of every route, in order.
func AllHostnames(routes []Route) []string {
	var out []string
	for _, r := range routes {
		out = append(out, r.Hostnames...)
	}
	return out
}
