package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kipass/kipass/authority"
	"github.com/kipass/kipass/policy"
	"github.com/kipass/kipass/trust"
)

func init() {
	register("authority", command{
		Summary: "health authority keys, issuers and trust bundles (init, add-issuer, revoke, sign-bundle)",
		Run:     runAuthority,
	})
}

func runAuthority(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usageErrorf("usage: kipass authority init|add-issuer|revoke|sign-bundle --dir DIR [flags]")
	}
	fs := flag.NewFlagSet("authority "+args[0], flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dir := fs.String("dir", envOr(env, "KIPASS_AUTHORITY_DIR", "authority"), "authority directory")
	switch args[0] {
	case "init":
		if err := fs.Parse(args[1:]); err != nil {
			return usageErrorf("%v", err)
		}
		if _, err := authority.Init(*dir); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "authority created in %s: root key %s (keep offline), sealing key %s (investigators only)\n",
			*dir, authority.RootKeyFile, authority.SealKeyFile)
		return nil
	case "add-issuer":
		name := fs.String("name", "", "issuer name, e.g. \"Naver\"")
		pubFile := fs.String("public-key", "", "issuer public key file (default: make a new key pair)")
		keyOut := fs.String("key-out", "", "where to write a new issuer private key (default: in --dir)")
		from := fs.String("valid-from", "", "start of validity, RFC 3339 (default: now)")
		to := fs.String("valid-to", "", "end of validity, RFC 3339 (default: two years on)")
		if err := fs.Parse(args[1:]); err != nil {
			return usageErrorf("%v", err)
		}
		if *name == "" {
			return usageErrorf("--name: required")
		}
		validFrom, err := parseTimeFlag("valid-from", *from, time.Now())
		if err != nil {
			return err
		}
		validTo, err := parseTimeFlag("valid-to", *to, time.Time{})
		if err != nil {
			return err
		}
		var pub ed25519.PublicKey
		if *pubFile != "" {
			if pub, err = trust.ReadPublicKey(*pubFile); err != nil {
				return usageErrorf("--public-key: %v", err)
			}
		}
		d, err := authority.Open(*dir)
		if err != nil {
			return err
		}
		kid, written, err := d.AddIssuer(*name, pub, validFrom, validTo, *keyOut)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "issuer %q trusted with key id %s\n", *name, kid)
		if written != "" {
			fmt.Fprintf(env.Stdout, "issuer private key written to %s\n", written)
		}
		return nil
	case "revoke":
		kid := fs.String("key-id", "", "issuer key id to revoke")
		if err := fs.Parse(args[1:]); err != nil {
			return usageErrorf("%v", err)
		}
		if *kid == "" {
			return usageErrorf("--key-id: required")
		}
		d, err := authority.Open(*dir)
		if err != nil {
			return err
		}
		return d.Revoke(*kid)
	case "sign-bundle":
		rulesFile := fs.String("rules", "", "rule document (default: the built-in kr-2022)")
		out := fs.String("out", "", "bundle file to write (default: DIR/"+authority.DefaultBundle+")")
		if err := fs.Parse(args[1:]); err != nil {
			return usageErrorf("%v", err)
		}
		var rules *policy.Rules
		if *rulesFile != "" {
			r, err := policy.Load(*rulesFile)
			if err != nil {
				return usageErrorf("--rules: %v", err)
			}
			rules = r
		}
		d, err := authority.Open(*dir)
		if err != nil {
			return err
		}
		signed, b, err := d.SignBundle(rules, time.Now())
		if err != nil {
			return err
		}
		if *out == "" {
			*out = filepath.Join(*dir, authority.DefaultBundle)
		}
		if err := os.WriteFile(*out, signed, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "trust bundle version %d (%d issuers, %d revoked) written to %s\n",
			b.Version, len(b.Issuers), len(b.RevokedKeyIDs), *out)
		return nil
	}
	return usageErrorf("unknown authority command %q", args[0])
}

// envOr returns the environment override of a flag default.
func envOr(env *Env, name, def string) string {
	if env.Getenv != nil {
		if v := env.Getenv(name); v != "" {
			return v
		}
	}
	return def
}

// parseTimeFlag parses an RFC 3339 time flag, or returns def when it is empty.
func parseTimeFlag(name, v string, def time.Time) (time.Time, error) {
	if v == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usageErrorf("--%s: %q is not an RFC 3339 time such as 2022-01-12T18:00:00+09:00", name, v)
	}
	return t, nil
}
