package hook

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/clozeloop/clozeloop/store"
)

// Role is what an account may do. Roles are ordered: each one may do
// everything the ones below it may.
type Role string

// The roles.
const (
	// RoleAnnotator answers items and skips or flags them for themselves.
	RoleAnnotator Role = "annotator"
	// RoleLead also closes rounds, skips an item for everyone and sees
	// agreement.
	RoleLead Role = "lead"
	// RoleAdmin also manages accounts.
	RoleAdmin Role = "admin"
)

// roleRank orders the roles.
var roleRank = map[Role]int{RoleAnnotator: 1, RoleLead: 2, RoleAdmin: 3}

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if _, ok := roleRank[r]; !ok {
		return "", fmt.Errorf("unknown role %q: want annotator, lead or admin", s)
	}
	return r, nil
}

// Allows reports whether r may do what need requires.
func (r Role) Allows(need Role) bool {
	have, ok := roleRank[r]
	return ok && have >= roleRank[need]
}

// TokenPrefix starts every annotator token, so that a leaked token is easy
// to recognise (secret scanners, logs).
const TokenPrefix = "clz_"

// tokenBytes is the entropy of a token: 256 bits from crypto/rand.
const tokenBytes = 32

// DefaultAccountsKey is where the accounts live in the object store, next
// to the runs.
const DefaultAccountsKey = "annotators/accounts.json"

// maxAccounts bounds the accounts file.
const maxAccounts = 10000

// NewToken returns a fresh token: TokenPrefix followed by 256 random bits
// in unpadded base64url (47 characters in all).
func NewToken() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// HashToken is what is stored of a token: the hex SHA-256 of the whole
// token string. A fast hash is enough because the token is 256 random bits,
// not a human-chosen password: no dictionary applies and an exhaustive
// search is out of reach at any hashing speed, so a slow KDF (bcrypt,
// argon2) would only slow every request down.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// wellFormedToken reports whether t looks like a token (so that garbage is
// refused without a lookup and never reaches a log as "a token").
func wellFormedToken(t string) bool {
	if !strings.HasPrefix(t, TokenPrefix) || len(t) != len(TokenPrefix)+base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(t[len(TokenPrefix):])
	return err == nil
}

// Account is one annotator (or lead, or admin). Only the token's hash is
// kept.
type Account struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// TokenHash is HashToken of the account's token.
	TokenHash string `json:"token_hash"`
	// TokenID is the first 12 hex digits of TokenHash: it tells tokens apart
	// in listings without revealing anything usable.
	TokenID   string    `json:"token_id"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	// RotatedAt is set when the token was replaced.
	RotatedAt time.Time `json:"rotated_at,omitzero"`
	// RevokedAt is set when the account was revoked; its token no longer
	// signs in and its sessions end.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	RevokedBy string    `json:"revoked_by,omitempty"`
}

// Active reports whether the account may sign in.
func (a Account) Active() bool { return a.RevokedAt.IsZero() }

// AccountInfo is an Account without its token hash, for listings.
type AccountInfo struct {
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	TokenID   string    `json:"token_id"`
	Active    bool      `json:"active"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	RotatedAt time.Time `json:"rotated_at,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	RevokedBy string    `json:"revoked_by,omitempty"`
}

// Info drops the token hash.
func (a Account) Info() AccountInfo {
	return AccountInfo{Name: a.Name, Role: a.Role, TokenID: a.TokenID, Active: a.Active(), CreatedAt: a.CreatedAt,
		CreatedBy: a.CreatedBy, RotatedAt: a.RotatedAt, RevokedAt: a.RevokedAt, RevokedBy: a.RevokedBy}
}

// AccountsFile is the stored accounts object.
type AccountsFile struct {
	Version  int       `json:"version"`
	Accounts []Account `json:"accounts"`
}

// accountsFileVersion is the format version written.
const accountsFileVersion = 1

// CheckAccountName checks an account name: 1-64 characters, letters,
// digits, '.', '_', '-' and '@', starting with a letter or digit.
func CheckAccountName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("account name %q must be 1-64 characters", name)
	}
	for i, r := range name {
		ok := unicode.IsLetter(r) || unicode.IsDigit(r) || (i > 0 && strings.ContainsRune("._-@", r))
		if !ok {
			return fmt.Errorf("account name %q: only letters, digits and . _ - @ (not first) are allowed", name)
		}
	}
	return nil
}

func (f *AccountsFile) validate() error {
	if f.Version != accountsFileVersion {
		return fmt.Errorf("accounts file version %d, this clozeloop reads %d", f.Version, accountsFileVersion)
	}
	if len(f.Accounts) > maxAccounts {
		return fmt.Errorf("accounts file holds %d accounts, more than %d", len(f.Accounts), maxAccounts)
	}
	active := map[string]bool{}
	hashes := map[string]bool{}
	for i, a := range f.Accounts {
		if err := CheckAccountName(a.Name); err != nil {
			return fmt.Errorf("account %d: %w", i, err)
		}
		if _, err := ParseRole(string(a.Role)); err != nil {
			return fmt.Errorf("account %q: %w", a.Name, err)
		}
		if len(a.TokenHash) != 64 {
			return fmt.Errorf("account %q: token hash is not a hex SHA-256", a.Name)
		}
		if hashes[a.TokenHash] {
			return fmt.Errorf("account %q: token hash used twice", a.Name)
		}
		hashes[a.TokenHash] = true
		if a.Active() {
			if active[a.Name] {
				return fmt.Errorf("two active accounts are named %q", a.Name)
			}
			active[a.Name] = true
		}
	}
	return nil
}

func decodeAccounts(b []byte) (AccountsFile, error) {
	var f AccountsFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return AccountsFile{}, fmt.Errorf("decode accounts file: %w", err)
	}
	if err := f.validate(); err != nil {
		return AccountsFile{}, fmt.Errorf("accounts file: %w", err)
	}
	return f, nil
}

// ErrAccountsConflict is returned by AccountStore.Save when the accounts
// changed since they were loaded.
var ErrAccountsConflict = errors.New("accounts changed concurrently")

// ErrAccountExists is returned when adding a name that has an active
// account.
var ErrAccountExists = errors.New("an active account with this name exists")

// ErrNoAccount is returned when a named account does not exist (or is
// revoked).
var ErrNoAccount = errors.New("no such active account")

// AccountStore keeps the accounts file. Load of a store that holds none
// returns an empty file and version "". Save writes f only if the stored
// version is still prev ("" meaning: none stored yet), else it returns an
// error wrapping ErrAccountsConflict.
type AccountStore interface {
	Load(ctx context.Context) (AccountsFile, string, error)
	Save(ctx context.Context, f AccountsFile, prev string) error
}

// S3Accounts is an AccountStore on an object store, one JSON object at Key
// written with a conditional PUT (If-Match / If-None-Match).
type S3Accounts struct {
	Store *store.Store
	// Key defaults to DefaultAccountsKey.
	Key string
}

func (s S3Accounts) key() string {
	if s.Key == "" {
		return DefaultAccountsKey
	}
	return s.Key
}

// Load implements AccountStore.
func (s S3Accounts) Load(ctx context.Context) (AccountsFile, string, error) {
	b, info, err := s.Store.GetBytes(ctx, s.key())
	if errors.Is(err, store.ErrNotFound) {
		return AccountsFile{Version: accountsFileVersion}, "", nil
	}
	if err != nil {
		return AccountsFile{}, "", fmt.Errorf("load accounts: %w", err)
	}
	f, err := decodeAccounts(b)
	if err != nil {
		return AccountsFile{}, "", fmt.Errorf("%s: %w", s.key(), err)
	}
	return f, info.ETag, nil
}

// Save implements AccountStore.
func (s S3Accounts) Save(ctx context.Context, f AccountsFile, prev string) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode accounts: %w", err)
	}
	cond := store.Condition{IfMatch: prev, IfNoneMatch: prev == ""}
	if _, err := s.Store.PutBytesIf(ctx, s.key(), append(b, '\n'), cond); err != nil {
		if errors.Is(err, store.ErrPreconditionFailed) || (prev != "" && errors.Is(err, store.ErrNotFound)) {
			return fmt.Errorf("save accounts: %w: %w", ErrAccountsConflict, err)
		}
		return fmt.Errorf("save accounts: %w", err)
	}
	return nil
}

// MemAccounts is an AccountStore in memory (tests, single-process use).
type MemAccounts struct {
	mu      sync.Mutex
	data    []byte
	version int
}

// Load implements AccountStore.
func (m *MemAccounts) Load(ctx context.Context) (AccountsFile, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return AccountsFile{Version: accountsFileVersion}, "", nil
	}
	f, err := decodeAccounts(m.data)
	return f, fmt.Sprint(m.version), err
}

// Save implements AccountStore.
func (m *MemAccounts) Save(ctx context.Context, f AccountsFile, prev string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := ""
	if m.data != nil {
		cur = fmt.Sprint(m.version)
	}
	if cur != prev {
		return fmt.Errorf("save accounts: %w (stored version %q, read %q)", ErrAccountsConflict, cur, prev)
	}
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode accounts: %w", err)
	}
	m.data = b
	m.version++
	return nil
}

// maxSaveAttempts bounds the read-modify-write retries of updateAccounts.
const maxSaveAttempts = 16

// updateAccounts applies change to the stored accounts with optimistic
// concurrency: load, change, conditional save, and start over when another
// writer won.
func updateAccounts(ctx context.Context, st AccountStore, change func(f *AccountsFile) error) error {
	for attempt := 1; ; attempt++ {
		f, ver, err := st.Load(ctx)
		if err != nil {
			return err
		}
		if err := change(&f); err != nil {
			return err
		}
		f.Version = accountsFileVersion
		if err := f.validate(); err != nil {
			return err
		}
		err = st.Save(ctx, f, ver)
		if err == nil || !errors.Is(err, ErrAccountsConflict) || attempt == maxSaveAttempts {
			return err
		}
	}
}

// newAccount makes an account with a fresh token.
func newAccount(name string, role Role, by string, now time.Time) (Account, string, error) {
	tok, err := NewToken()
	if err != nil {
		return Account{}, "", err
	}
	h := HashToken(tok)
	return Account{Name: name, Role: role, TokenHash: h, TokenID: h[:12], CreatedAt: now.UTC(), CreatedBy: by}, tok, nil
}

// AddAccount creates an active account and returns it with its token, the
// only time the token exists outside the caller. A name may be reused only
// after the earlier account was revoked.
func AddAccount(ctx context.Context, st AccountStore, name string, role Role, by string) (AccountInfo, string, error) {
	if err := CheckAccountName(name); err != nil {
		return AccountInfo{}, "", err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return AccountInfo{}, "", err
	}
	var acc Account
	var tok string
	err := updateAccounts(ctx, st, func(f *AccountsFile) error {
		if slices.ContainsFunc(f.Accounts, func(a Account) bool { return a.Name == name && a.Active() }) {
			return fmt.Errorf("%q: %w (revoke it or rotate its token)", name, ErrAccountExists)
		}
		var err error
		acc, tok, err = newAccount(name, role, by, time.Now())
		if err != nil {
			return err
		}
		f.Accounts = append(f.Accounts, acc)
		return nil
	})
	if err != nil {
		return AccountInfo{}, "", fmt.Errorf("add account %s: %w", name, err)
	}
	return acc.Info(), tok, nil
}

// RotateToken gives the active account name a new token (the old one stops
// working) and returns it. role, when not empty, also changes its role.
func RotateToken(ctx context.Context, st AccountStore, name string, role Role) (AccountInfo, string, error) {
	var acc Account
	var tok string
	err := updateAccounts(ctx, st, func(f *AccountsFile) error {
		i := slices.IndexFunc(f.Accounts, func(a Account) bool { return a.Name == name && a.Active() })
		if i < 0 {
			return fmt.Errorf("%q: %w", name, ErrNoAccount)
		}
		fresh, t, err := newAccount(name, f.Accounts[i].Role, "", time.Now())
		if err != nil {
			return err
		}
		a := f.Accounts[i]
		a.TokenHash, a.TokenID, a.RotatedAt = fresh.TokenHash, fresh.TokenID, fresh.CreatedAt
		if role != "" {
			a.Role = role
		}
		f.Accounts[i], acc, tok = a, a, t
		return nil
	})
	if err != nil {
		return AccountInfo{}, "", fmt.Errorf("rotate token of %s: %w", name, err)
	}
	return acc.Info(), tok, nil
}

// RevokeAccount revokes the active account name: its token no longer signs
// in, and the hooks end its sessions when they next reload the accounts.
func RevokeAccount(ctx context.Context, st AccountStore, name, by string) (AccountInfo, error) {
	var acc Account
	err := updateAccounts(ctx, st, func(f *AccountsFile) error {
		i := slices.IndexFunc(f.Accounts, func(a Account) bool { return a.Name == name && a.Active() })
		if i < 0 {
			return fmt.Errorf("%q: %w", name, ErrNoAccount)
		}
		f.Accounts[i].RevokedAt, f.Accounts[i].RevokedBy = time.Now().UTC(), by
		acc = f.Accounts[i]
		return nil
	})
	if err != nil {
		return AccountInfo{}, fmt.Errorf("revoke account %s: %w", name, err)
	}
	return acc.Info(), nil
}

// ListAccounts returns every account (revoked ones too), without hashes.
func ListAccounts(ctx context.Context, st AccountStore) ([]AccountInfo, error) {
	f, _, err := st.Load(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]AccountInfo, 0, len(f.Accounts))
	for _, a := range f.Accounts {
		out = append(out, a.Info())
	}
	return out, nil
}

// EnsureAccount returns a fresh token for the active account name, creating
// it with role when missing and rotating its token otherwise (so that the
// token printed by `clozeloop dev` at each start is the only valid one).
func EnsureAccount(ctx context.Context, st AccountStore, name string, role Role, by string) (AccountInfo, string, error) {
	info, tok, err := RotateToken(ctx, st, name, role)
	if errors.Is(err, ErrNoAccount) {
		return AddAccount(ctx, st, name, role, by)
	}
	return info, tok, err
}
