package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the key's length: AES-256.
const KeySize = 32

// prefix marks a sealed value; a stored value without it was written
// before sealing existed and is returned as it is.
const prefix = "berth-sealed:v1:"

// ErrOpen: a sealed value does not open with this key (another key, or
// it was changed or moved to another owner).
var ErrOpen = errors.New("sealed value does not open with this key")

// Box seals and opens values with one key. Safe for concurrent use.
type Box struct {
	aead cipher.AEAD
}

// New returns a Box for a KeySize-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secretbox: key of %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plain for owner (authenticated, not secret: the workspace
// id). An empty plain stays empty.
func (b *Box) Seal(owner, plain string) (string, error) {
	if plain == "" {
		return "", nil
	}
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := b.aead.Seal(nonce, nonce, []byte(plain), []byte(owner))
	return prefix + base64.RawStdEncoding.EncodeToString(out), nil
}

// Open decrypts what Seal made for owner; a value that is not sealed is
// returned as it is.
func (b *Box) Open(owner, sealed string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, prefix)
	if !ok {
		return sealed, nil
	}
	raw, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || len(raw) < b.aead.NonceSize() {
		return "", ErrOpen
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], []byte(owner))
	if err != nil {
		return "", ErrOpen
	}
	return string(plain), nil
}

// LoadOrCreateKey reads the key in path (KeySize raw bytes, or their
// standard base64 on one line); when there is no such file it creates one
// with a random key, mode 600, in a directory it creates with mode 700.
func LoadOrCreateKey(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	if len(raw) == KeySize {
		return raw, nil
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("secrets key %s: want %d bytes, raw or in base64", path, KeySize)
	}
	return key, nil
}

func createKey(path string) ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) { // another process made it meanwhile
		return LoadOrCreateKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	_, werr := f.Write(key)
	serr := f.Sync()
	if err := errors.Join(werr, serr, f.Close()); err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("secrets key %s: %w", path, err)
	}
	return key, nil
}
