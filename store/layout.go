package store

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Fixed object names of the run layout (see the package documentation).
const (
	ManifestFile  = "MANIFEST.json"
	LatestPointer = "latest"
	maxKeyLen     = 1024
	maxIDLen      = 128
)

// validateKey checks that key is a relative, slash-separated S3 key without
// empty, "." or ".." segments, so it maps cleanly onto folders and cannot
// escape a prefix.
func validateKey(key string) error {
	switch {
	case key == "":
		return errors.New("empty key")
	case len(key) > maxKeyLen:
		return fmt.Errorf("key longer than %d bytes", maxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("key %q is not valid UTF-8", key)
	case strings.ContainsAny(key, "\x00\\"):
		return fmt.Errorf("key %q contains NUL or backslash", key)
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("key %q has an empty segment (leading, trailing or double slash)", key)
		case ".", "..":
			return fmt.Errorf("key %q has a %q segment", key, seg)
		}
	}
	return nil
}

// ValidateKey reports whether key is acceptable to a Store (errors wrap
// ErrInvalidKey).
func ValidateKey(key string) error {
	if err := validateKey(key); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return nil
}

// validateID checks a model name or model version: 1–128 characters
// from [A-Za-z0-9._-], not starting with "." or "-".
func validateID(kind, id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("%w: %s %q must be 1-%d characters", ErrInvalidKey, kind, id, maxIDLen)
	}
	if id[0] == '.' || id[0] == '-' {
		return fmt.Errorf("%w: %s %q must not start with '.' or '-'", ErrInvalidKey, kind, id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%w: %s %q may only contain letters, digits, '.', '_' and '-'", ErrInvalidKey, kind, id)
		}
	}
	return nil
}

// ModelKeys builds the keys of a published model. Create it with Model.
type ModelKeys struct{ name string }

// Model returns the key builder for model name.
func Model(name string) (ModelKeys, error) {
	if err := validateID("model name", name); err != nil {
		return ModelKeys{}, err
	}
	return ModelKeys{name: name}, nil
}

// Name returns the model name.
func (m ModelKeys) Name() string { return m.name }

// Prefix returns "models/<name>/".
func (m ModelKeys) Prefix() string { return "models/" + m.name + "/" }

// Latest returns "models/<name>/latest", the pointer to the newest complete
// version.
func (m ModelKeys) Latest() string { return m.Prefix() + LatestPointer }

// Version returns the prefix "models/<name>/<version>/" of one version.
// "latest" is reserved for the pointer.
func (m ModelKeys) Version(version string) (string, error) {
	if m.name == "" {
		return "", fmt.Errorf("%w: zero ModelKeys; create it with store.Model", ErrInvalidKey)
	}
	if err := validateID("model version", version); err != nil {
		return "", err
	}
	if version == LatestPointer {
		return "", fmt.Errorf("%w: model version %q is reserved for the pointer", ErrInvalidKey, version)
	}
	return m.Prefix() + version + "/", nil
}

// ManifestKey returns the manifest key of a checkpoint stored under prefix.
func ManifestKey(prefix string) string {
	return strings.TrimSuffix(prefix, "/") + "/" + ManifestFile
}
