// Package hfhub resolves Hugging Face Hub model references (hf://org/name@rev)
// to local folders, downloading what a fill-mask model needs into the cache
// that the Hub's Python client (huggingface_hub, used by transformers) keeps,
// in the same layout, so that models downloaded by one are reused by the other:
//
//	$HF_HUB_CACHE/models--org--name/
//	  blobs/<etag>                    file contents (etag: sha256 for LFS files, git sha1 otherwise)
//	  snapshots/<commit>/<file>       relative symlinks into blobs
//	  refs/<revision>                 the commit a branch or tag pointed to
//
// The download protocol is the Hub's public one: HEAD on
// {endpoint}/{repo}/resolve/{revision}/{file} for the commit (X-Repo-Commit),
// the blob name (X-Linked-Etag or ETag) and size (X-Linked-Size or
// Content-Length), then GET, following the redirect to the storage host for
// large (LFS) files; GET {endpoint}/api/models/{repo}/revision/{revision} for
// the file list and commit. Errors carry the Hub's X-Error-Code.
package hfhub

import (
	"fmt"
	"regexp"
	"strings"
)

// Scheme prefixes a Hub reference.
const Scheme = "hf://"

// DefaultRevision is the revision of a reference that names none.
const DefaultRevision = "main"

// Ref names a model repository on the Hub and a revision (branch, tag or
// commit hash).
type Ref struct {
	Repo     string // "org/name" (or a legacy "name")
	Revision string // never empty after ParseRef
}

// String returns the reference as hf://repo@revision.
func (r Ref) String() string {
	return Scheme + r.Repo + "@" + r.Revision
}

// IsCommit reports whether the revision is a full commit hash.
func (r Ref) IsCommit() bool { return commitRE.MatchString(r.Revision) }

var (
	repoPartRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]*$`)
	commitRE   = regexp.MustCompile(`^[0-9a-f]{40}$`)
	hexRE      = regexp.MustCompile(`^[0-9a-f]+$`)
)

// IsRef reports whether s is written as a Hub reference (hf://…).
func IsRef(s string) bool { return strings.HasPrefix(s, Scheme) }

// ParseRef parses "hf://org/name[@revision]" (or, without the scheme,
// "org/name[@revision]"). The revision defaults to "main".
func ParseRef(s string) (Ref, error) {
	body := strings.TrimPrefix(s, Scheme)
	repo, rev, hasRev := strings.Cut(body, "@")
	if hasRev && rev == "" {
		return Ref{}, fmt.Errorf("hub reference %q: empty revision after @", s)
	}
	if !hasRev {
		rev = DefaultRevision
	}
	if err := validRepo(repo); err != nil {
		return Ref{}, fmt.Errorf("hub reference %q: %w", s, err)
	}
	if err := validRevision(rev); err != nil {
		return Ref{}, fmt.Errorf("hub reference %q: %w", s, err)
	}
	return Ref{Repo: repo, Revision: rev}, nil
}

// LooksLikeRepo reports whether s has the form of a bare "org/name" Hub
// repository (one slash, the Hub's allowed characters, optional @revision).
func LooksLikeRepo(s string) bool {
	repo, _, _ := strings.Cut(s, "@")
	parts := strings.Split(repo, "/")
	return len(parts) == 2 && validRepo(repo) == nil && !strings.HasPrefix(s, ".")
}

func validRepo(repo string) error {
	if repo == "" {
		return fmt.Errorf("no repository (want org/name)")
	}
	if len(repo) > 96 {
		return fmt.Errorf("repository %q is longer than 96 characters", repo)
	}
	parts := strings.Split(repo, "/")
	if len(parts) > 2 {
		return fmt.Errorf("repository %q: want org/name", repo)
	}
	for _, p := range parts {
		if !repoPartRE.MatchString(p) || strings.Contains(p, "--") || strings.Contains(p, "..") || strings.HasSuffix(p, ".") || strings.HasSuffix(p, "-") {
			return fmt.Errorf("repository %q: names use letters, digits, '-', '_' and '.', without '--' or '..'", repo)
		}
	}
	return nil
}

func validRevision(rev string) error {
	if strings.HasPrefix(rev, "/") || strings.HasSuffix(rev, "/") || strings.Contains(rev, "\\") || strings.ContainsAny(rev, "\x00\n\r") {
		return fmt.Errorf("revision %q is not a branch, tag or commit", rev)
	}
	for _, p := range strings.Split(rev, "/") {
		if p == "" || p == "." || p == ".." {
			return fmt.Errorf("revision %q is not a branch, tag or commit", rev)
		}
	}
	return nil
}

// repoFolderName is the cache folder of a model repository, as the Python
// client names it.
func repoFolderName(repo string) string {
	return "models--" + strings.ReplaceAll(repo, "/", "--")
}
