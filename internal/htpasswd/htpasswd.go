// Package htpasswd makes the registry's htpasswd entries: bcrypt hashes of generated passwords at a
// low cost, with a salt derived from the account, the password and a stack secret (an HMAC), so the
// same password always gives the same hash.
//
// Why a low cost is safe here: bcrypt's cost protects low-entropy, human-chosen passwords against
// offline guessing after a hash leaks. These passwords are generated (32 random characters from 66,
// about 190 bits), so guessing one is out of reach at any cost, while the registry pays the cost on
// every request (distribution checks the hash per request, it caches nothing). Why a derived salt is
// safe here: a salt defeats precomputed tables and makes equal passwords hash differently; with
// 190-bit random passwords neither tables nor repeats exist. The salt is an HMAC keyed by a stack
// secret that lives only in the state (secret) and is never written to the cluster, so the salt
// seen in the htpasswd file gives no faster check of a guess than bcrypt itself. Being
// deterministic keeps the htpasswd Secret, and so `pulumi preview`, unchanged between runs.
package htpasswd

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/blowfish"
)

// Cost is the bcrypt cost of the generated entries: bcrypt's minimum. Measured on the 2-core
// sandbox: cost 10 (pulumi-random's fixed cost) 57 ms per check, cost 4 about 1 ms.
const Cost = bcrypt.MinCost

// MinPasswordLength refuses the fast hash for anything that does not look generated.
const MinPasswordLength = 24

// MinSaltKeyLength is the shortest stack secret accepted as the salt's HMAC key.
const MinSaltKeyLength = 16

// bcrypt's own base64 alphabet, without padding.
var b64 = base64.NewEncoding("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789").WithPadding(base64.NoPadding)

// magic is the text bcrypt encrypts 64 times with the expensive key schedule.
var magic = []byte("OrpheanBeholderScryDoubt")

// Hash returns the $2a$ bcrypt hash of user's password at Cost, salted with
// HMAC-SHA256(saltKey, user NUL password)[:16].
func Hash(user, password, saltKey string) (string, error) {
	if len(saltKey) < MinSaltKeyLength {
		return "", fmt.Errorf("htpasswd: the salt key must have at least %d characters", MinSaltKeyLength)
	}
	if len(password) < MinPasswordLength {
		return "", fmt.Errorf("htpasswd: a %d-character password is not a generated one (at least %d): the low-cost hash is only for generated passwords",
			len(password), MinPasswordLength)
	}
	if len(password) > 72 {
		return "", errors.New("htpasswd: bcrypt uses at most 72 bytes of a password")
	}
	mac := hmac.New(sha256.New, []byte(saltKey))
	mac.Write([]byte(user + "\x00" + password))
	return hashWithSalt([]byte(password), Cost, mac.Sum(nil)[:16])
}

// Entry is one htpasswd line, "user:hash".
func Entry(user, password, saltKey string) (string, error) {
	if user == "" || strings.ContainsAny(user, ":\n") {
		return "", fmt.Errorf("htpasswd: user %q is empty or holds ':' or a newline", user)
	}
	h, err := Hash(user, password, saltKey)
	if err != nil {
		return "", fmt.Errorf("htpasswd: user %s: %w", user, err)
	}
	return user + ":" + h, nil
}

// hashWithSalt is bcrypt (as golang.org/x/crypto/bcrypt computes it) with a given 16-byte salt.
func hashWithSalt(password []byte, cost int, salt []byte) (string, error) {
	// C bcrypt compatibility: the key includes its terminating NUL.
	key := append(append([]byte(nil), password...), 0)
	c, err := blowfish.NewSaltedCipher(key, salt)
	if err != nil {
		return "", fmt.Errorf("htpasswd: blowfish: %w", err)
	}
	for i := 0; i < 1<<cost; i++ {
		blowfish.ExpandKey(key, c)
		blowfish.ExpandKey(salt, c)
	}
	data := append([]byte(nil), magic...)
	for i := 0; i < len(data); i += 8 {
		for j := 0; j < 64; j++ {
			c.Encrypt(data[i:i+8], data[i:i+8])
		}
	}
	// C bcrypt compatibility: only 23 of the 24 encrypted bytes are encoded.
	return fmt.Sprintf("$2a$%02d$%s%s", cost, b64.EncodeToString(salt), b64.EncodeToString(data[:23])), nil
}
