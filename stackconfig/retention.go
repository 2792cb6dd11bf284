package stackconfig

import (
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/regstack/registry-stack/gc"
)

// DefaultRegctlImage is retention.regctlImage's default: regctl of the regclient release the
// retention step was tested with (gc's tests build the same version from tools/regctl).
const DefaultRegctlImage = "ghcr.io/regclient/regctl:v0.11.7-alpine"

const retentionFields = "dryRun, regctlImage, policies [{repositories, keepNewest, keepTags, keepYoungerThan, deleteAll}]"

// rawRetention is the retention key as stack config holds it.
type rawRetention struct {
	DryRun      *flexBool `json:"dryRun"`
	RegctlImage string    `json:"regctlImage"`
	Policies    []struct {
		Repositories    []string  `json:"repositories"`
		KeepNewest      *flexInt  `json:"keepNewest"`
		KeepTags        []string  `json:"keepTags"`
		KeepYoungerThan string    `json:"keepYoungerThan"`
		DeleteAll       *flexBool `json:"deleteAll"`
	} `json:"policies"`
}

var daysPattern = regexp.MustCompile(`^([0-9]+)d$`)

// retentionAge parses keepYoungerThan: a number of days (30d) or a Go duration (72h, 90m).
func retentionAge(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if m := daysPattern.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil {
			return 0, err
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("not a positive duration")
	}
	return d, nil
}

// validateRetention checks the retention key; each problem names retention.<field>.
func (v *validator) validateRetention(c *Config) {
	r := c.RetentionRaw
	if r == nil {
		return
	}
	if r.RegctlImage != "" {
		v.image("retention.regctlImage", r.RegctlImage)
	}
	for i, p := range r.Policies {
		if _, err := retentionAge(p.KeepYoungerThan); err != nil {
			v.bad(fmt.Sprintf("retention.policies[%d].keepYoungerThan", i), p.KeepYoungerThan, "a duration in days (30d) or hours and minutes (72h, 90m)")
		}
	}
	for _, p := range c.retention().Problems("retention") {
		if p.Path == "retention.regctlImage" {
			continue // checked above, with its default
		}
		v.bad(p.Path, p.Value, p.Allowed)
	}
}

// retention builds the typed retention from the key (nil: off).
func (c *Config) retention() *gc.Retention {
	r := c.RetentionRaw
	if r == nil {
		return nil
	}
	out := &gc.Retention{DryRun: r.DryRun != nil && bool(*r.DryRun), RegctlImage: r.RegctlImage}
	if out.RegctlImage == "" {
		out.RegctlImage = DefaultRegctlImage
	}
	for _, p := range r.Policies {
		age, _ := retentionAge(p.KeepYoungerThan) // validated
		out.Policies = append(out.Policies, gc.RetentionPolicy{
			Repositories: p.Repositories, KeepNewest: intOr(p.KeepNewest, 0), KeepTags: p.KeepTags,
			KeepYoungerThan: age, DeleteAll: p.DeleteAll != nil && bool(*p.DeleteAll),
		})
	}
	return out
}
