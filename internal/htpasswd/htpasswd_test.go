package htpasswd

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

const (
	generated = "Qm3vXb8LrT2pKz9WcY4nHs7dFg6jA1eU" // 32 characters, like the stack's RandomPassword
	key       = "stack-salt-key-0123456789abcdef"
)

// The hash is a real bcrypt hash of the chosen cost: the verifier distribution uses accepts the
// password and refuses any other.
func TestHashVerifiesWithBcrypt(t *testing.T) {
	h, err := Hash("admin", generated, key)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$2a$04$") || len(h) != 60 {
		t.Errorf("hash %q is not a $2a$ cost-4 bcrypt hash of 60 characters", h)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(h), []byte(generated)); err != nil {
		t.Errorf("bcrypt does not accept the password: %v", err)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(h), []byte(generated+"x")); err == nil {
		t.Error("bcrypt accepts a wrong password")
	}
	if cost, err := bcrypt.Cost([]byte(h)); err != nil || cost != Cost {
		t.Errorf("cost = %d, %v; want %d", cost, err, Cost)
	}
}

// Same inputs, same hash (a stable Secret and an empty preview); another password, account or
// stack key, another salt.
func TestHashIsStableAndSaltedPerPassword(t *testing.T) {
	a1, _ := Hash("admin", generated, key)
	a2, _ := Hash("admin", generated, key)
	if a1 != a2 {
		t.Errorf("two hashes of one password differ: %s %s", a1, a2)
	}
	for _, other := range [][3]string{{"admin", strings.ToLower(generated), key}, {"ci", generated, key}, {"admin", generated, key + "x"}} {
		b, err := Hash(other[0], other[1], other[2])
		if err != nil {
			t.Fatal(err)
		}
		if a1[7:29] == b[7:29] {
			t.Errorf("%q shares a salt with admin's: %s %s", other, a1, b)
		}
	}
	if strings.Contains(a1, generated) {
		t.Error("the hash contains the password")
	}
}

// Our bcrypt with a given salt is x/crypto's: same salt, same hash.
func TestHashMatchesReferenceImplementation(t *testing.T) {
	ref, err := bcrypt.GenerateFromPassword([]byte(generated), Cost)
	if err != nil {
		t.Fatal(err)
	}
	salt, err := b64.DecodeString(string(ref[7:29]))
	if err != nil {
		t.Fatal(err)
	}
	got, err := hashWithSalt([]byte(generated), Cost, salt)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(ref) {
		t.Errorf("hashWithSalt = %s, x/crypto/bcrypt = %s", got, ref)
	}
}

func TestShortOrLongPasswordsAndBadUsersAreRefused(t *testing.T) {
	for _, p := range []string{"", "hunter2", strings.Repeat("a", 23), strings.Repeat("a", 73)} {
		if _, err := Hash("admin", p, key); err == nil {
			t.Errorf("Hash accepted a %d-character password", len(p))
		}
	}
	for _, u := range []string{"", "a:b", "a\nb"} {
		if _, err := Entry(u, generated, key); err == nil {
			t.Errorf("Entry accepted user %q", u)
		}
	}
	if _, err := Hash("admin", generated, "short"); err == nil {
		t.Error("Hash accepted a short salt key")
	}
	e, err := Entry("ci", generated, key)
	if err != nil || !strings.HasPrefix(e, "ci:$2a$04$") {
		t.Errorf("Entry = %q, %v", e, err)
	}
}
