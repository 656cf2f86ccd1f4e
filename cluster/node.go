package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Node is one `kipass serve central` process on a fixed loopback port, so that a
// restarted node answers at the same URL.
type Node struct {
	Index int
	Port  int
	Bin   string   // the kipass binary
	Args  []string // the flags after `serve central`, without --addr
	Log   string   // file that collects the node's stderr

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// URL is the node's base URL.
func (n *Node) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", n.Port) }

// Start runs the node and waits until /healthz answers.
func (n *Node) Start() error {
	n.mu.Lock()
	if n.cmd != nil {
		n.mu.Unlock()
		return fmt.Errorf("cluster: node %d is already running", n.Index)
	}
	args := append([]string{"serve", "central", "--addr", fmt.Sprintf("127.0.0.1:%d", n.Port)}, n.Args...)
	cmd := exec.Command(n.Bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	logf, err := os.OpenFile(n.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		n.mu.Unlock()
		return err
	}
	done := make(chan struct{})
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-done:
			n.mu.Lock()
			n.cmd = nil
			n.mu.Unlock()
			return fmt.Errorf("cluster: node %d exited at start; see %s", n.Index, n.Log)
		default:
		}
		if resp, err := c.Get(n.URL() + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("cluster: node %d did not come up; see %s", n.Index, n.Log)
}

// Pid returns the node's process id, or 0 when it is not running.
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// Kill sends SIGKILL (kill -9) and waits for the process to end.
func (n *Node) Kill() { n.signal(syscall.SIGKILL) }

// Stop sends SIGTERM, the graceful stop of an upgrade, and waits for the process to
// finish its requests in flight and exit.
func (n *Node) Stop() { n.signal(syscall.SIGTERM) }

func (n *Node) signal(sig syscall.Signal) {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// RSS returns the node's resident set size in bytes, read from /proc/PID/status.
func (n *Node) RSS() (int64, error) {
	pid := n.Pid()
	if pid == 0 {
		return 0, fmt.Errorf("cluster: node %d is not running", n.Index)
	}
	return ProcRSS(pid)
}

// ProcRSS reads VmRSS of a process from /proc.
func ProcRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("cluster: no VmRSS for pid %d", pid)
}

// Config describes a cluster.
type Config struct {
	Dir        string   // everything lives here
	Bin        string   // the kipass binary
	Nodes      int      // central nodes
	Bundle     string   // signed trust bundle file
	RootKey    string   // authority root public key file
	AdminToken string   // operator token of the nodes
	NodeArgs   []string // extra flags for every node
	Logf       func(format string, args ...any)
}

// Cluster is a running PostgreSQL pair and central nodes.
type Cluster struct {
	Config
	PG    *Postgres
	Nodes []*Node

	mu      sync.Mutex
	primary int
	stop    context.CancelFunc
}

// Up makes the database pair, then starts the nodes, and supervises synchronous
// replication until Down.
func Up(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	pg, err := NewPostgres(filepath.Join(cfg.Dir, "pg"))
	if err != nil {
		return nil, err
	}
	pg.Logf = cfg.Logf
	c := &Cluster{Config: cfg, PG: pg}
	if err := pg.Init(ctx); err != nil {
		pg.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	go pg.Supervise(sctx, c.Primary, 2*time.Second, 500*time.Millisecond)
	for i := 0; i < cfg.Nodes; i++ {
		port, err := FreePort()
		if err != nil {
			c.Down()
			return nil, err
		}
		n := &Node{Index: i, Port: port, Bin: cfg.Bin, Log: filepath.Join(cfg.Dir, fmt.Sprintf("node%d.log", i)),
			Args: append([]string{"--postgres", pg.DSN(), "--bundle", cfg.Bundle, "--root-key", cfg.RootKey,
				"--admin-token", cfg.AdminToken}, cfg.NodeArgs...)}
		if err := n.Start(); err != nil {
			c.Down()
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
		cfg.Logf("node %d up at %s", i, n.URL())
	}
	return c, nil
}

// URLs returns the nodes' base URLs.
func (c *Cluster) URLs() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.URL())
	}
	return out
}

// Primary returns the index of the server that is (or was last) the primary.
func (c *Cluster) Primary() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.primary
}

// Failover kills the primary with SIGKILL and promotes the standby, as an HA manager
// does when the primary's machine is lost. It returns how long promotion took.
func (c *Cluster) Failover(ctx context.Context) (time.Duration, error) {
	old := c.Primary()
	c.PG.Kill(old)
	start := time.Now()
	if err := c.PG.Promote(ctx, 1-old); err != nil {
		return 0, err
	}
	c.mu.Lock()
	c.primary = 1 - old
	c.mu.Unlock()
	return time.Since(start), nil
}

// Down stops the nodes gracefully and then the database servers.
func (c *Cluster) Down() {
	if c.stop != nil {
		c.stop()
	}
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.Stop() }()
	}
	wg.Wait()
	c.PG.Close()
}
