package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// services holds the long-running services that `kipass serve NAME` starts; each
// service's file adds itself in its init function.
var services = map[string]func(ctx context.Context, env *Env, args []string) error{}

func init() {
	register("serve", command{
		Summary: "run one service: central, issuer or registry",
		Run: func(ctx context.Context, env *Env, args []string) error {
			names := make([]string, 0, len(services))
			for n := range services {
				names = append(names, n)
			}
			sort.Strings(names)
			if len(args) == 0 {
				return usageErrorf("usage: kipass serve %s [flags]", strings.Join(names, "|"))
			}
			s, ok := services[args[0]]
			if !ok {
				return usageErrorf("unknown service %q (want one of %s)", args[0], strings.Join(names, ", "))
			}
			if err := s(ctx, env, args[1:]); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			return nil
		},
	})
}
