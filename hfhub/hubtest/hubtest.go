// Package hubtest is a fake Hugging Face Hub for tests: an HTTP server that
// follows the Hub's documented download protocol (the model info API,
// resolve URLs answering HEAD and GET with X-Repo-Commit, ETag,
// X-Linked-Etag and X-Linked-Size, a 302 redirect to a separate storage
// server for LFS files, which honours Range requests, and 401/404 answers
// with X-Error-Code), serving repositories a test builds from files.
package hubtest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is the fake Hub (Server.URL is the endpoint) and its storage host.
type Server struct {
	Hub, CDN *httptest.Server
	// Token is the bearer token that opens gated repositories.
	Token string

	mu       sync.Mutex
	repos    map[string]*repo
	blobs    map[string][]byte // sha256 → LFS content
	requests []string
	corrupt  map[string]bool  // sha256 → serve altered bytes
	cutAfter map[string]int64 // sha256 → abort the body after n bytes (once)
}

type repo struct {
	gated   bool
	refs    map[string]string            // branch or tag → commit
	commits map[string]map[string][]byte // commit → file → content
}

// New starts a fake Hub; Close stops it.
func New() *Server {
	s := &Server{repos: map[string]*repo{}, blobs: map[string][]byte{}, corrupt: map[string]bool{}, cutAfter: map[string]int64{}}
	s.Hub = httptest.NewServer(http.HandlerFunc(s.serveHub))
	s.CDN = httptest.NewServer(http.HandlerFunc(s.serveCDN))
	return s
}

// URL is the endpoint to use as HF_ENDPOINT.
func (s *Server) URL() string { return s.Hub.URL }

// Close stops both servers.
func (s *Server) Close() {
	s.Hub.Close()
	s.CDN.Close()
}

// IsLFS says which files the fake Hub stores with LFS (weights).
func IsLFS(name string) bool {
	return strings.HasSuffix(name, ".safetensors") || strings.HasSuffix(name, ".bin") || strings.HasSuffix(name, ".model")
}

// AddCommit adds a commit with files to repository name (created if
// needed, gated as said), points branch at it and returns its hash.
func (s *Server) AddCommit(name, branch string, gated bool, files map[string][]byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repos[name]
	if r == nil {
		r = &repo{refs: map[string]string{}, commits: map[string]map[string][]byte{}}
		s.repos[name] = r
	}
	r.gated = gated
	h := sha1.New()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(h, "%s\n%d\n", name, len(r.commits))
	for _, n := range names {
		fmt.Fprintf(h, "%s %x\n", n, sha256.Sum256(files[n]))
		if IsLFS(n) {
			sum := sha256.Sum256(files[n])
			s.blobs[hex.EncodeToString(sum[:])] = files[n]
		}
	}
	commit := hex.EncodeToString(h.Sum(nil))
	r.commits[commit] = files
	r.refs[branch] = commit
	return commit
}

// Corrupt makes the storage host serve the LFS content of data altered.
func (s *Server) Corrupt(data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt[SHA256(data)] = true
}

// CutAfter makes the next download of data's LFS content stop after n
// bytes, as a dropped connection does.
func (s *Server) CutAfter(data []byte, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutAfter[SHA256(data)] = n
}

// Requests returns the requests served so far ("HEAD /org/m/resolve/…",
// "GET cdn /blobs/… bytes=10-") and forgets them.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.requests
	s.requests = nil
	return out
}

// SHA256 is the hex SHA-256 of data (the blob name of an LFS file).
func SHA256(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// GitSHA1 is the git blob hash of data (the ETag of a regular file).
func GitSHA1(data []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

func (s *Server) log(r *http.Request, host string) {
	line := r.Method + " " + host + r.URL.EscapedPath()
	if rg := r.Header.Get("Range"); rg != "" {
		line += " " + rg
	}
	s.mu.Lock()
	s.requests = append(s.requests, line)
	s.mu.Unlock()
}

func hubError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("X-Error-Code", code)
	w.Header().Set("X-Error-Message", msg)
	http.Error(w, msg, status)
}

// lookup finds the repository and commit, answering errors as the Hub.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request, name, rev string) (*repo, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp := s.repos[name]
	if rp == nil {
		hubError(w, http.StatusUnauthorized, "RepoNotFound", "Repository Not Found for url: "+r.URL.String()+".")
		return nil, "", false
	}
	if rp.gated && r.Header.Get("Authorization") != "Bearer "+s.Token {
		hubError(w, http.StatusUnauthorized, "GatedRepo", "Access to model "+name+" is restricted. You must have access to it and be authenticated to access it. Please log in.")
		return nil, "", false
	}
	commit, ok := rp.refs[rev]
	if !ok {
		if _, isCommit := rp.commits[rev]; isCommit {
			commit = rev
		} else {
			hubError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
			return nil, "", false
		}
	}
	return rp, commit, true
}

func (s *Server) serveHub(w http.ResponseWriter, r *http.Request) {
	s.log(r, "")
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	unesc := func(p string) string { u, _ := url.PathUnescape(p); return u }
	switch {
	case len(parts) == 6 && parts[0] == "api" && parts[1] == "models" && parts[4] == "revision" && r.Method == http.MethodGet:
		name := parts[2] + "/" + parts[3]
		rp, commit, ok := s.lookup(w, r, name, unesc(parts[5]))
		if !ok {
			return
		}
		var sib []map[string]string
		s.mu.Lock()
		for f := range rp.commits[commit] {
			sib = append(sib, map[string]string{"rfilename": f})
		}
		s.mu.Unlock()
		sort.Slice(sib, func(i, j int) bool { return sib[i]["rfilename"] < sib[j]["rfilename"] })
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": name, "modelId": name, "sha": commit, "siblings": sib})
	case len(parts) >= 5 && parts[2] == "resolve" && (r.Method == http.MethodHead || r.Method == http.MethodGet):
		name := parts[0] + "/" + parts[1]
		rp, commit, ok := s.lookup(w, r, name, unesc(parts[3]))
		if !ok {
			return
		}
		var file []string
		for _, p := range parts[4:] {
			file = append(file, unesc(p))
		}
		fname := strings.Join(file, "/")
		s.mu.Lock()
		data, ok := rp.commits[commit][fname]
		s.mu.Unlock()
		w.Header().Set("X-Repo-Commit", commit)
		if !ok {
			hubError(w, http.StatusNotFound, "EntryNotFound", fname+" does not exist on \""+commit+"\"")
			return
		}
		w.Header().Set("ETag", `"`+GitSHA1(data)+`"`)
		if IsLFS(fname) {
			sum := SHA256(data)
			w.Header().Set("X-Linked-Etag", `"`+sum+`"`)
			w.Header().Set("X-Linked-Size", strconv.Itoa(len(data)))
			w.Header().Set("Location", s.CDN.URL+"/blobs/"+sum+"?signature=x")
			w.WriteHeader(http.StatusFound)
			return
		}
		http.ServeContent(w, r, fname, time.Time{}, strings.NewReader(string(data)))
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	s.log(r, "cdn ")
	if r.Header.Get("Authorization") != "" {
		http.Error(w, "the storage host must not receive the Hub token", http.StatusBadRequest)
		return
	}
	sum := strings.TrimPrefix(r.URL.Path, "/blobs/")
	s.mu.Lock()
	data, ok := s.blobs[sum]
	bad := s.corrupt[sum]
	cut, isCut := s.cutAfter[sum]
	delete(s.cutAfter, sum)
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if bad {
		data = append([]byte(nil), data...)
		data[len(data)/2] ^= 0xff
	}
	if isCut {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(data[:cut])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}
	http.ServeContent(w, r, sum, time.Time{}, strings.NewReader(string(data)))
}

// CountCDN counts the requests of a Requests list that went to the
// storage host (LFS downloads).
func CountCDN(reqs []string) int {
	n := 0
	for _, r := range reqs {
		if strings.HasPrefix(r, "GET cdn ") {
			n++
		}
	}
	return n
}
