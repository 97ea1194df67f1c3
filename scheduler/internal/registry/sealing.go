package registry

import "fmt"

// Sealer encrypts a secret for storage and decrypts it again
// (secretbox.Box); owner is what the secret belongs to (a workspace id) and
// is bound to it.
type Sealer interface {
	Seal(owner, plain string) (string, error)
	Open(owner, sealed string) (string, error)
}

// SealCredentials makes the registry keep credentials sealed by s: sealed
// when ReserveAndInsert writes them, opened when GetCredentials reads them
// (values written before, unsealed, are read as they are). Call it once,
// before the registry is used.
func (db *DB) SealCredentials(s Sealer) { db.sealer = s }

func (db *DB) sealCredentials(id string, c Credentials) (Credentials, error) {
	if db.sealer == nil || c.Git == "" {
		return c, nil
	}
	git, err := db.sealer.Seal(id, c.Git)
	if err != nil {
		return Credentials{}, fmt.Errorf("seal credentials: %w", err)
	}
	return Credentials{Git: git}, nil
}

func (db *DB) openCredentials(id string, c Credentials) (Credentials, error) {
	if db.sealer == nil || c.Git == "" {
		return c, nil
	}
	git, err := db.sealer.Open(id, c.Git)
	if err != nil {
		return Credentials{}, fmt.Errorf("get credentials: workspace %q: %w", id, err)
	}
	return Credentials{Git: git}, nil
}
