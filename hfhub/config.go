package hfhub

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultEndpoint is the Hub's address when HF_ENDPOINT is not set.
const DefaultEndpoint = "https://huggingface.co"

// Config says where the Hub and the cache are, as the Python client reads
// them from its environment variables.
type Config struct {
	// Endpoint is the Hub's base URL (HF_ENDPOINT).
	Endpoint string
	// Token is sent as a bearer token to the endpoint (HF_TOKEN, else the
	// token file); empty sends none.
	Token string
	// CacheDir is the hub cache folder (HF_HUB_CACHE, else $HF_HOME/hub).
	CacheDir string
	// Offline forbids requests: only the cache is used (HF_HUB_OFFLINE=1).
	Offline bool
}

// ConfigFromEnv reads the Python client's variables through getenv
// (os.Getenv in production):
//
//	HF_ENDPOINT     default https://huggingface.co
//	HF_HOME         default $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface
//	HF_HUB_CACHE    default $HF_HOME/hub (HUGGINGFACE_HUB_CACHE is the old name)
//	HF_TOKEN        default: the file HF_TOKEN_PATH, else $HF_HOME/token
//	HF_HUB_OFFLINE  1, true, yes or on: use the cache only
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{Endpoint: strings.TrimRight(getenv("HF_ENDPOINT"), "/")}
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpoint
	}
	home := getenv("HF_HOME")
	if home == "" {
		base := getenv("XDG_CACHE_HOME")
		if base == "" {
			h := getenv("HOME")
			if h == "" {
				var err error
				if h, err = os.UserHomeDir(); err != nil {
					return c, fmt.Errorf("hub cache: no HF_HOME, XDG_CACHE_HOME or home folder: %w", err)
				}
			}
			base = filepath.Join(h, ".cache")
		}
		home = filepath.Join(base, "huggingface")
	}
	c.CacheDir = getenv("HF_HUB_CACHE")
	if c.CacheDir == "" {
		c.CacheDir = getenv("HUGGINGFACE_HUB_CACHE")
	}
	if c.CacheDir == "" {
		c.CacheDir = filepath.Join(home, "hub")
	}
	c.Offline = isTrue(getenv("HF_HUB_OFFLINE"))
	c.Token = strings.TrimSpace(getenv("HF_TOKEN"))
	if c.Token == "" {
		c.Token = strings.TrimSpace(getenv("HUGGING_FACE_HUB_TOKEN"))
	}
	if c.Token == "" {
		path := getenv("HF_TOKEN_PATH")
		if path == "" {
			path = filepath.Join(home, "token")
		}
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			c.Token = strings.TrimSpace(string(data))
		case !os.IsNotExist(err):
			return c, fmt.Errorf("read Hugging Face token file: %w", err)
		}
	}
	return c, nil
}

func isTrue(v string) bool {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "1", "ON", "YES", "TRUE":
		return true
	}
	return false
}
