package registry

// EnvVar is an environment variable with a plain value (never a reference to a Secret: a value
// given in config is in the stack's config already).
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}
