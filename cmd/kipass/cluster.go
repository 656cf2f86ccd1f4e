package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kipass/kipass/authority"
	"github.com/kipass/kipass/cluster"
	kiphttp "github.com/kipass/kipass/http"
)

func init() {
	register("cluster", command{
		Summary: "a local cluster for operators and chaos runs: `kipass cluster up|down|status|failover --dir D`",
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) == 0 {
				return usageErrorf("usage: kipass cluster up|down|status|failover --dir DIR [--nodes 3]")
			}
			fs := flag.NewFlagSet("cluster "+args[0], flag.ContinueOnError)
			fs.SetOutput(env.Stderr)
			dir := fs.String("dir", envOr(env, "KIPASS_CLUSTER_DIR", "kipass-cluster"), "directory of the cluster (KIPASS_CLUSTER_DIR)")
			nodes := fs.Int("nodes", 3, "central nodes (up)")
			token := fs.String("admin-token", envOr(env, "KIPASS_ADMIN_TOKEN", ""), "operator token of the nodes; default: a random one (KIPASS_ADMIN_TOKEN)")
			if err := fs.Parse(args[1:]); err != nil {
				if errors.Is(err, flag.ErrHelp) {
					return err
				}
				return usageErrorf("%v", err)
			}
			abs, err := filepath.Abs(*dir)
			if err != nil {
				return err
			}
			switch args[0] {
			case "up":
				return clusterUp(ctx, env, abs, *nodes, *token)
			case "down":
				return clusterSignal(abs, syscall.SIGTERM)
			case "failover":
				return clusterSignal(abs, syscall.SIGUSR1)
			case "status":
				return clusterStatus(ctx, env, abs)
			}
			return usageErrorf("unknown cluster command %q: want up, down, status or failover", args[0])
		},
	})
}

// clusterInfo is DIR/cluster.json: what `up` started, for `status`, `down` and loadgen.
type clusterInfo struct {
	PID        int      `json:"pid"` // the `kipass cluster up` process
	Nodes      []string `json:"nodes"`
	DSN        string   `json:"dsn"`
	Servers    []string `json:"servers"` // each PostgreSQL server alone
	AdminToken string   `json:"admin_token"`
	Bundle     string   `json:"bundle"`
	RootKey    string   `json:"root_key"`
	IssuerKey  string   `json:"issuer_key"`
}

const clusterInfoFile = "cluster.json"

// clusterUp starts the cluster and keeps it until SIGINT/SIGTERM (or `down`); SIGUSR1
// (`failover`) kills the primary and promotes the standby.
func clusterUp(ctx context.Context, env *Env, dir string, nodes int, token string) error {
	if _, err := os.Stat(filepath.Join(dir, clusterInfoFile)); err == nil {
		return fmt.Errorf("%s already holds a cluster: run `kipass cluster down --dir %s` or pick another directory", dir, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	if token == "" {
		token = hex.EncodeToString(randomBytes(16))
	}
	adir := filepath.Join(dir, "authority")
	a, err := authority.Init(adir)
	if err != nil {
		return err
	}
	issuerKey := filepath.Join(adir, "issuer.key")
	now := time.Now()
	if _, _, err := a.AddIssuer("cluster issuer", nil, now.Add(-24*time.Hour), now.Add(365*24*time.Hour), issuerKey); err != nil {
		return err
	}
	signed, _, err := a.SignBundle(nil, now)
	if err != nil {
		return err
	}
	bundle := filepath.Join(adir, authority.DefaultBundle)
	if err := os.WriteFile(bundle, signed, 0o644); err != nil {
		return err
	}
	logf := func(format string, args ...any) { fmt.Fprintf(env.Stderr, "kipass cluster: "+format+"\n", args...) }
	c, err := cluster.Up(ctx, cluster.Config{Dir: dir, Bin: bin, Nodes: nodes, Bundle: bundle,
		RootKey: filepath.Join(adir, authority.RootPubFile), AdminToken: token, Logf: logf})
	if err != nil {
		return err
	}
	defer os.Remove(filepath.Join(dir, clusterInfoFile))
	defer c.Down()
	info := clusterInfo{PID: os.Getpid(), Nodes: c.URLs(), DSN: c.PG.DSN(), AdminToken: token, Bundle: bundle,
		RootKey: filepath.Join(adir, authority.RootPubFile), IssuerKey: issuerKey,
		Servers: []string{c.PG.ServerDSN(0, cluster.Database), c.PG.ServerDSN(1, cluster.Database)}}
	b, _ := json.MarshalIndent(info, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, clusterInfoFile), b, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "cluster up: %d nodes %s\ndatabase %s\nload it with:\n  kipass loadgen --central %s --admin-token %s --bundle %s --root-key %s --issuer-key %s --check-postgres '%s'\n",
		nodes, strings.Join(info.Nodes, " "), info.DSN, strings.Join(info.Nodes, ","), token, bundle, info.RootKey, issuerKey, info.DSN)
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	for {
		select {
		case <-ctx.Done():
			logf("stopping")
			return nil
		case <-usr1:
			took, err := c.Failover(context.Background())
			if err != nil {
				logf("failover failed: %v", err)
				continue
			}
			logf("failover: primary killed, server %d promoted in %v; the old primary is not rebuilt", c.Primary(), took)
		}
	}
}

func readClusterInfo(dir string) (*clusterInfo, error) {
	b, err := os.ReadFile(filepath.Join(dir, clusterInfoFile))
	if err != nil {
		return nil, fmt.Errorf("no cluster in %s: %w", dir, err)
	}
	var info clusterInfo
	return &info, json.Unmarshal(b, &info)
}

func clusterSignal(dir string, sig syscall.Signal) error {
	info, err := readClusterInfo(dir)
	if err != nil {
		return err
	}
	if err := syscall.Kill(info.PID, sig); err != nil {
		return fmt.Errorf("signal the cluster process %d: %w", info.PID, err)
	}
	if sig != syscall.SIGTERM {
		return nil
	}
	for i := 0; i < 600; i++ {
		if syscall.Kill(info.PID, 0) != nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the cluster process %d is still running", info.PID)
}

// clusterStatus prints each node's /v1/status and each database server's role and
// replication state.
func clusterStatus(ctx context.Context, env *Env, dir string) error {
	info, err := readClusterInfo(dir)
	if err != nil {
		return err
	}
	w := env.Stdout
	for _, u := range info.Nodes {
		c := kiphttp.NewClient(u, "")
		c.HTTPClient = httpClient()
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := c.Status(sctx)
		cancel()
		if err != nil {
			fmt.Fprintf(w, "node %s: unreachable (%v)\n", u, err)
			continue
		}
		fmt.Fprintf(w, "node %s: %s (db %s %s; ingest %s %s, queue %d, last commit %.1f ms, shed last minute %d)\n", u, st.State,
			st.Components.DB.State, st.Components.DB.Reason, st.Components.Ingest.State, st.Components.Ingest.Reason,
			st.Components.Ingest.QueueDepth, st.Components.Ingest.LastCommitMS, st.Components.Ingest.ShedLastMinute)
	}
	for i, dsn := range info.Servers {
		fmt.Fprintf(w, "postgres %d: %s\n", i, pgRole(ctx, dsn))
	}
	return nil
}

func pgRole(ctx context.Context, dsn string) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "down"
	}
	defer conn.Close(context.Background())
	var standby bool
	var sync string
	if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery(), current_setting('synchronous_standby_names')`).Scan(&standby, &sync); err != nil {
		return "error: " + err.Error()
	}
	if standby {
		return "standby (streaming from the primary)"
	}
	var streaming int
	conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'`).Scan(&streaming)
	if sync == "" {
		sync = "none: commits do not wait for a standby"
	}
	return fmt.Sprintf("primary, %d standby streaming, synchronous_standby_names %s", streaming, sync)
}
