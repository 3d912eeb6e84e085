package s3embed

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Credentials are the access key pair every request to the server must be
// signed with (AWS Signature Version 4).
type Credentials struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
}

// Limits on the credentials a server accepts.
const (
	minAccessKeyLen = 3
	maxAccessKeyLen = 128
	minSecretLen    = 16
	maxSecretLen    = 256
)

// Validate reports why c cannot be used: the access key id must be 3-128
// letters, digits, '-' or '_' (it is sent in the clear, in the Credential
// scope, where '/' separates fields), the secret 16-256 printable ASCII
// characters.
func (c Credentials) Validate() error {
	if n := len(c.AccessKeyID); n < minAccessKeyLen || n > maxAccessKeyLen {
		return fmt.Errorf("access key id must be %d to %d characters, got %d", minAccessKeyLen, maxAccessKeyLen, n)
	}
	for _, r := range c.AccessKeyID {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("access key id may hold only letters, digits, '-' and '_', got %q", r)
		}
	}
	if n := len(c.SecretAccessKey); n < minSecretLen || n > maxSecretLen {
		return fmt.Errorf("secret access key must be %d to %d characters, got %d", minSecretLen, maxSecretLen, n)
	}
	for _, r := range c.SecretAccessKey {
		if r <= ' ' || r > '~' {
			return errors.New("secret access key may hold only printable ASCII characters without spaces")
		}
	}
	return nil
}

// String describes c without the secret.
func (c Credentials) String() string { return "access key " + c.AccessKeyID }

// NewCredentials returns a random key pair: an access key id of 20
// upper-case letters and digits starting with "CL" and a 40-character
// secret (240 random bits).
func NewCredentials() (Credentials, error) {
	id := make([]byte, 12)
	secret := make([]byte, 30)
	if _, err := rand.Read(id); err != nil {
		return Credentials{}, fmt.Errorf("s3embed: random access key: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return Credentials{}, fmt.Errorf("s3embed: random secret: %w", err)
	}
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	return Credentials{
		AccessKeyID:     "CL" + enc.EncodeToString(id)[:18],
		SecretAccessKey: base64.RawURLEncoding.EncodeToString(secret),
	}, nil
}

// CredentialsFile is the name of the file, in the server's data folder,
// that LoadOrCreateCredentials uses. It lies outside every bucket folder, so
// the server never serves it.
const CredentialsFile = "credentials.json"

// LoadOrCreateCredentials reads the key pair stored in the file path, or,
// when there is none, generates one (NewCredentials) and stores it there
// with permissions 0600. created reports which. A file readable by group or
// others, or one that does not hold valid credentials, is an error: it is
// never replaced, so a server restart always keeps the keys its clients
// were given.
func LoadOrCreateCredentials(path string) (c Credentials, created bool, err error) {
	c, err = ReadCredentials(path)
	switch {
	case err == nil:
		return c, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return c, false, err
	}
	if c, err = NewCredentials(); err != nil {
		return c, false, err
	}
	if err := writeCredentials(path, c); err != nil {
		return Credentials{}, false, err
	}
	return c, true, nil
}

// ReadCredentials reads a credentials file written by
// LoadOrCreateCredentials. A missing file gives an error wrapping
// fs.ErrNotExist; a file readable by group or others is refused.
func ReadCredentials(path string) (Credentials, error) {
	var c Credentials
	f, err := os.Open(path)
	if err != nil {
		return c, fmt.Errorf("s3embed: credentials file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return c, fmt.Errorf("s3embed: credentials file %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return c, fmt.Errorf("s3embed: credentials file %s is readable by others (mode %04o): run chmod 600 on it", path, fi.Mode().Perm())
	}
	if err := json.NewDecoder(io.LimitReader(f, 64<<10)).Decode(&c); err != nil {
		return c, fmt.Errorf("s3embed: credentials file %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("s3embed: credentials file %s: %w", path, err)
	}
	return c, nil
}

// writeCredentials stores c in path (mode 0600) through a temporary file,
// refusing to replace an existing file.
func writeCredentials(path string, c Credentials) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("s3embed: encode credentials: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("s3embed: create credentials folder: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return fmt.Errorf("s3embed: write credentials: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("s3embed: write credentials: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("s3embed: write credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("s3embed: write credentials: %w", err)
	}
	// A hard link fails when path exists: two processes starting at once
	// cannot hand out different keys.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("s3embed: credentials file %s appeared while it was being created; start again", path)
		}
		return fmt.Errorf("s3embed: write credentials: %w", err)
	}
	return nil
}
