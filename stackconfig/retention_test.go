package stackconfig

import (
	"strings"
	"testing"
	"time"
)

func TestRetentionDefaultsAndTypedValues(t *testing.T) {
	c, err := parse(map[string]string{"retention": `{"dryRun":"true","policies":[` +
		`{"repositories":["ci/*","tmp/**"],"keepNewest":"10","keepTags":["latest","v[0-9]+\\.[0-9]+"],"keepYoungerThan":"30d"},` +
		`{"repositories":["scratch"],"deleteAll":true}]}`})
	if err != nil {
		t.Fatal(err)
	}
	r := c.Args().Retention
	if r == nil || !r.DryRun || r.RegctlImage != DefaultRegctlImage || len(r.Policies) != 2 {
		t.Fatalf("retention = %+v", r)
	}
	p := r.Policies[0]
	if p.KeepNewest != 10 || p.KeepYoungerThan != 30*24*time.Hour || len(p.KeepTags) != 2 || p.KeepTags[1] != `v[0-9]+\.[0-9]+` || p.DeleteAll {
		t.Errorf("policy 0 = %+v", p)
	}
	if q := r.Policies[1]; !q.DeleteAll || q.KeepNewest != 0 {
		t.Errorf("policy 1 = %+v", q)
	}
	if c, err := parse(nil); err != nil || c.Args().Retention != nil {
		t.Errorf("retention without the key: %+v, %v (want off)", c.Args().Retention, err)
	}
}

// Every invalid value is refused naming its path, all at once.
func TestRetentionRefusals(t *testing.T) {
	_, err := parse(map[string]string{"retention": `{"regctlImage":"regctl","policies":[` +
		`{"repositories":[],"keepYoungerThan":"a month"},` +
		`{"repositories":["Ci/*"],"keepTags":["("],"keepNewest":-2},` +
		`{"repositories":["all/*"]}]}`})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`config "retention.regctlImage": "regctl" is invalid`,
		`config "retention.policies[0].keepYoungerThan": "a month" is invalid; allowed: a duration in days (30d)`,
		`config "retention.policies[0].repositories": "[]" is invalid`,
		`config "retention.policies[1].repositories[0]": "Ci/*" is invalid`,
		`config "retention.policies[1].keepTags[0]": "(" is invalid`,
		`config "retention.policies[1].keepNewest": "-2" is invalid`,
		`config "retention.policies[2].deleteAll": "false" is invalid; allowed: true when the policy keeps nothing`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := parse(map[string]string{"retention": `{"policies":[{"repositories":["a"],"keep":3}]}`}); err == nil ||
		!strings.Contains(err.Error(), "retention") || !strings.Contains(err.Error(), `unknown field "keep"`) {
		t.Errorf("a misspelt field: %v", err)
	}
	if _, err := parse(map[string]string{"retention": `{"policies":[]}`}); err == nil || !strings.Contains(err.Error(), `config "retention.policies": "[]" is invalid`) {
		t.Errorf("no policy: %v", err)
	}
}
