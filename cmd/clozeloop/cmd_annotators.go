package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/clozeloop/clozeloop/hook"
)

const annotatorsUsage = `add NAME [--role annotator|lead|admin] [store flags] [--json]
       clozeloop annotators list [store flags] [--json]
       clozeloop annotators revoke NAME [store flags] [--json]
       clozeloop annotators rotate NAME [--role ROLE] [store flags] [--json]

Accounts live in the object store next to the runs (--accounts-key, default
` + hook.DefaultAccountsKey + `), each token only as its SHA-256. A token is
printed once, by add and rotate; keep it, it cannot be shown again. The
hook picks changes up within its --accounts-ttl (default 5s). Store flags
default to the CLOZELOOP_S3_* environment variables.`

func annotatorsCmd() command {
	return command{
		name:    "annotators",
		summary: "add, list, revoke annotator accounts and their API tokens (stored hashed in S3)",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
				fmt.Fprintf(env.stderr, "Usage: clozeloop annotators %s\n", annotatorsUsage)
				if len(args) == 0 {
					return usagef("missing subcommand")
				}
				return flag.ErrHelp
			}
			switch args[0] {
			case "add", "rotate", "revoke", "list":
				return annotatorsRun(ctx, env, args[0], args[1:])
			}
			return usagef("annotators: unknown subcommand %q (want add, list, revoke or rotate)", args[0])
		},
	}
}

func annotatorsRun(ctx context.Context, env *cmdEnv, sub string, args []string) error {
	usage := "NAME [--role ROLE] [store flags] [--json]"
	if sub == "list" {
		usage = "[store flags] [--json]"
	}
	fs := newFlagSet(env, "annotators "+sub, usage)
	open, err := storeFlags(fs)
	if err != nil {
		return err
	}
	key := fs.String("accounts-key", hook.DefaultAccountsKey, "object `key` of the accounts")
	asJSON := fs.Bool("json", false, "print JSON")
	var role *string
	if sub == "add" || sub == "rotate" {
		def := ""
		if sub == "add" {
			def = string(hook.RoleAnnotator)
		}
		role = fs.String("role", def, "`role`: annotator (answer, skip/flag for themselves), lead (also close rounds, skip for everyone), admin (also accounts)")
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	want := 1
	if sub == "list" {
		want = 0
	}
	if len(pos) != want {
		return usagef("annotators %s: want %s", sub, usage)
	}
	var r hook.Role
	if role != nil && *role != "" {
		if r, err = hook.ParseRole(*role); err != nil {
			return usagef("%v", err)
		}
	}
	st, err := open(ctx, env)
	if err != nil {
		return err
	}
	accounts := hook.S3Accounts{Store: st, Key: *key}
	switch sub {
	case "list":
		list, err := hook.ListAccounts(ctx, accounts)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(env.stdout, map[string]any{"annotators": list})
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tTOKEN ID\tSTATE\tCREATED")
		for _, a := range list {
			state := "active"
			if !a.Active {
				state = "revoked " + a.RevokedAt.Format(time.DateTime)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Name, a.Role, a.TokenID, state, a.CreatedAt.Format(time.DateTime))
		}
		return tw.Flush()
	case "revoke":
		info, err := hook.RevokeAccount(ctx, accounts, pos[0], cliActor())
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(env.stdout, map[string]any{"account": info})
		}
		fmt.Fprintf(env.stdout, "revoked %s (%s, token %s); hooks refuse it within their --accounts-ttl\n", info.Name, info.Role, info.TokenID)
		return nil
	}
	var info hook.AccountInfo
	var tok string
	if sub == "add" {
		info, tok, err = hook.AddAccount(ctx, accounts, pos[0], r, cliActor())
	} else {
		info, tok, err = hook.RotateToken(ctx, accounts, pos[0], r)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.stdout, hook.NewTokenResponse{Account: info, Token: tok})
	}
	fmt.Fprintf(env.stdout, "account %s (%s), token id %s\n\n  %s\n\nThis token is shown once: hand it to %s (sign in on the annotation page, or send \"Authorization: Bearer <token>\").\n",
		info.Name, info.Role, info.TokenID, tok, info.Name)
	return nil
}

// cliActor names who changes accounts from the CLI (for the audit fields).
func cliActor() string {
	if u := os.Getenv("USER"); u != "" {
		return "cli:" + u
	}
	return "cli"
}

// parseInterleaved parses flags that may come before, between or after
// positional arguments ("add NAME --role lead") and returns the positional
// ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
