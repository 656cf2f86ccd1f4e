package chaos

import (
	"context"
	"testing"
	"time"
)

// TestNodeKill: kill -9 of one central node every 10 s while 200 scanners upload; a
// supervisor (systemd's Restart=always) starts it again a second later.
func TestNodeKill(t *testing.T) {
	w := mustCluster(t, 3)
	every := envDuration("KIPASS_CHAOS_KILL_EVERY", 10*time.Second)
	kills := 0
	cfg := w.config(t)
	cfg.Duration = max(cfg.Duration, 2*every+5*time.Second) // at least two kills
	w.run(t, cfg, func(ctx context.Context, _ time.Time) {
		for k := 0; ; k++ {
			if !sleepCtx(ctx, every) {
				return
			}
			n := w.c.Nodes[k%len(w.c.Nodes)]
			n.Kill()
			kills++
			t.Logf("kill -9 node %d", n.Index)
			sleepCtx(context.Background(), time.Second)
			if err := n.Start(); err != nil {
				t.Errorf("restart node %d: %v", n.Index, err)
			}
		}
	})
	if kills < 2 {
		t.Fatalf("%d nodes killed, want at least 2", kills)
	}
}

// TestPrimaryFailover: kill -9 of the PostgreSQL primary mid-load, promotion of the
// synchronous standby; the nodes follow the primary through the multi-host DSN.
func TestPrimaryFailover(t *testing.T) {
	w := mustCluster(t, 2)
	cfg := w.config(t)
	failed := false
	w.run(t, cfg, func(ctx context.Context, _ time.Time) {
		if !sleepCtx(ctx, cfg.Duration*2/5) {
			return
		}
		took, err := w.c.Failover(context.Background())
		if err != nil {
			t.Errorf("failover: %v", err)
			return
		}
		failed = true
		t.Logf("primary killed, standby promoted in %v", took)
	})
	if !failed {
		t.Fatal("no failover happened")
	}
}

// TestRollingRestart: SIGTERM, start, next, for every node, as an upgrade does.
func TestRollingRestart(t *testing.T) {
	w := mustCluster(t, 3)
	restarted := 0
	w.run(t, w.config(t), func(ctx context.Context, _ time.Time) {
		if !sleepCtx(ctx, 3*time.Second) {
			return
		}
		for _, n := range w.c.Nodes {
			start := time.Now()
			n.Stop()
			if err := n.Start(); err != nil {
				t.Errorf("restart node %d: %v", n.Index, err)
				return
			}
			restarted++
			t.Logf("node %d restarted in %v", n.Index, time.Since(start).Round(time.Millisecond))
			if !sleepCtx(ctx, 3*time.Second) {
				return
			}
		}
	})
	if restarted != len(w.c.Nodes) {
		t.Fatalf("restarted %d of %d nodes", restarted, len(w.c.Nodes))
	}
}

// TestStandbyDown: the standby dies mid-load. Commits wait for it until the
// supervisor stops asking for a synchronous standby (2 s), then go on with the
// primary's own durable WAL; when the standby is back and streaming, commits are
// synchronous again.
func TestStandbyDown(t *testing.T) {
	w := mustCluster(t, 2)
	cfg := w.config(t)
	sawAsync := false
	w.run(t, cfg, func(ctx context.Context, _ time.Time) {
		if !sleepCtx(ctx, cfg.Duration/4) {
			return
		}
		standby := 1 - w.c.Primary()
		w.c.PG.Kill(standby)
		t.Log("standby killed")
		if !sleepCtx(ctx, cfg.Duration/3) {
			return
		}
		sawAsync = !w.c.PG.Synchronous()
		if err := w.c.PG.Start(standby); err != nil {
			t.Errorf("restart standby: %v", err)
		}
		t.Log("standby restarted")
	})
	if !sawAsync {
		t.Error("with the standby down the primary was still waiting for it")
	}
	deadline := time.Now().Add(20 * time.Second)
	for !w.c.PG.Synchronous() && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if !w.c.PG.Synchronous() {
		t.Error("replication did not become synchronous again after the standby came back")
	}
}

// TestPartition: every scanner loses its network path to central for a while (a proxy
// that drops everything), keeps scanning into its outbox, and catches up after healing.
func TestPartition(t *testing.T) {
	w := mustCluster(t, 2)
	cfg := w.config(t)
	part := envDuration("KIPASS_CHAOS_PARTITION", 60*time.Second)
	cfg.Duration = max(cfg.Duration, part+10*time.Second)
	var proxies []*proxy
	cfg.Centrals = nil
	for _, u := range w.c.URLs() {
		p := mustProxy(t, u)
		proxies = append(proxies, p)
		cfg.Centrals = append(cfg.Centrals, p.URL())
	}
	rep := w.run(t, cfg, func(ctx context.Context, _ time.Time) {
		if !sleepCtx(ctx, 4*time.Second) {
			return
		}
		for _, p := range proxies {
			p.Partition()
		}
		t.Logf("partitioned for %v", part)
		sleepCtx(context.Background(), part)
		for _, p := range proxies {
			p.Heal()
		}
		t.Log("healed")
	})
	// While cut off, the visits waited in the outboxes: several seconds' worth.
	if want := int64(cfg.Rate * part.Seconds() / 2); rep.MaxOutbox < want {
		t.Errorf("max outbox depth %d, want at least %d: did the partition happen?", rep.MaxOutbox, want)
	}
}
