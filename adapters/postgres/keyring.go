package postgres

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Keyring encrypts user secrets at rest with AES-256-GCM. Each ciphertext
// names its key (key id), so keys rotate: add a key, make it active, and
// secrets written from then on use it; old ones stay readable while their
// key is listed. The additional data binds a ciphertext to its user, slot
// and key, so rows cannot be swapped between users.
type Keyring struct {
	keys   map[string]cipher.AEAD
	active string
}

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ParseKeyring reads "ID:BASE64,ID:BASE64" (32-byte keys, standard or URL
// base64, padded or not). active names the key for new secrets; empty is
// allowed when there is exactly one key.
func ParseKeyring(spec, active string) (*Keyring, error) {
	k := &Keyring{keys: map[string]cipher.AEAD{}}
	for i, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, b64, ok := strings.Cut(item, ":")
		if !ok || !keyIDPattern.MatchString(id) {
			return nil, fmt.Errorf("secretKeys: item %d is not ID:BASE64 with an ID of letters, digits, . _ -", i+1)
		}
		raw, err := decodeKey(b64)
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("secretKeys: key %q is not 32 bytes of base64 (make one with: head -c32 /dev/urandom | base64)", id)
		}
		if _, dup := k.keys[id]; dup {
			return nil, fmt.Errorf("secretKeys: key %q is listed twice", id)
		}
		block, _ := aes.NewCipher(raw)
		k.keys[id], _ = cipher.NewGCM(block)
	}
	if len(k.keys) == 0 {
		return nil, errors.New("secretKeys: no key given")
	}
	switch {
	case active != "":
		if _, ok := k.keys[active]; !ok {
			return nil, fmt.Errorf("activeSecretKey %q is not in secretKeys", active)
		}
		k.active = active
	case len(k.keys) == 1:
		for id := range k.keys {
			k.active = id
		}
	default:
		return nil, errors.New("activeSecretKey must name one of the keys in secretKeys")
	}
	return k, nil
}

func decodeKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// Active returns the id of the key that encrypts new secrets.
func (k *Keyring) Active() string { return k.active }

func aad(user string, slot int, keyID string) []byte {
	return []byte(user + "\x00" + strconv.Itoa(slot) + "\x00" + keyID)
}

// Seal encrypts secret for a user's slot with the active key.
func (k *Keyring) Seal(user string, slot int, secret []byte) (keyID string, nonce, ciphertext []byte, err error) {
	nonce = make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, nil, err
	}
	return k.active, nonce, k.keys[k.active].Seal(nil, nonce, secret, aad(user, slot, k.active)), nil
}

// Open decrypts a secret sealed for user and slot with key keyID.
func (k *Keyring) Open(user string, slot int, keyID string, nonce, ciphertext []byte) ([]byte, error) {
	aead, ok := k.keys[keyID]
	if !ok {
		return nil, fmt.Errorf("the secret of user %q is encrypted with key %q, which postgres.secretKeys does not list", user, keyID)
	}
	if len(nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("the secret of user %q has a nonce of %d bytes", user, len(nonce))
	}
	plain, err := aead.Open(nil, nonce, ciphertext, aad(user, slot, keyID))
	if err != nil {
		return nil, fmt.Errorf("the secret of user %q does not decrypt with key %q (a wrong key under that id, or a tampered row)", user, keyID)
	}
	return plain, nil
}
