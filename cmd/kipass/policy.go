package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/policy"
)

// maxCaseSize bounds what `policy eval` reads from stdin; a case is a few hundred bytes.
const maxCaseSize = 1 << 20

func init() {
	register("policy", command{
		Summary: "apply the pass rules: policy eval [--rules FILE] < case.json",
		Run:     runPolicy,
	})
}

func runPolicy(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usageErrorf("usage: kipass policy eval [--rules FILE] < case.json")
	}
	switch args[0] {
	case "eval":
		return runPolicyEval(env, args[1:])
	default:
		return usageErrorf("unknown policy subcommand %q (want eval)", args[0])
	}
}

// runPolicyEval reads one JSON case on stdin and writes one JSON decision line.
func runPolicyEval(env *Env, args []string) error {
	fs := flag.NewFlagSet("policy eval", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported on one line below
	rulesPath := fs.String("rules", "", "rule document `FILE` (default: the embedded "+policy.DefaultID+")")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(env.Stderr, "usage: kipass policy eval [--rules FILE] < case.json")
			fs.SetOutput(env.Stderr)
			fs.PrintDefaults()
			return err
		}
		return usageErrorf("eval: %v", err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("eval: unexpected argument %q (the case is read from stdin)", fs.Arg(0))
	}

	rules := policy.Default()
	if *rulesPath != "" {
		r, err := policy.Load(*rulesPath)
		if err != nil {
			return usageErrorf("%s", oneLine(err))
		}
		rules = r
	}

	data, err := io.ReadAll(io.LimitReader(env.Stdin, maxCaseSize+1))
	if err != nil {
		return fmt.Errorf("eval: read stdin: %w", err)
	}
	if len(data) > maxCaseSize {
		return usageErrorf("eval: the case on stdin is larger than %d bytes", maxCaseSize)
	}
	c, err := policy.ParseCase(data)
	if err != nil {
		return usageErrorf("%s", oneLine(err))
	}
	d, err := rules.Evaluate(c)
	if err != nil {
		return usageErrorf("%s", oneLine(err))
	}
	if d.ValidUntil != nil {
		t := d.ValidUntil.In(kipass.KST)
		d.ValidUntil = &t
	}
	line, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("eval: encode decision: %w", err)
	}
	_, err = env.Stdout.Write(append(line, '\n'))
	return err
}

// oneLine returns the client-safe text of a domain error (which starts with the field
// it names), or the error's own text.
func oneLine(err error) string {
	var e *kipass.Error
	if errors.As(err, &e) {
		msg := kipass.ErrorMessage(err)
		// Keep the context Load adds ("load rules FILE: ...") in front of the message.
		if outer := err.Error(); outer != e.Error() {
			if i := len(outer) - len(e.Error()); i > 0 && outer[i:] == e.Error() {
				return outer[:i] + msg
			}
		}
		return msg
	}
	return err.Error()
}
