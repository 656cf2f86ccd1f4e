// Package cluster runs a kipass cluster on one machine: a PostgreSQL 15 primary with a
// synchronous hot standby, several `kipass serve central` nodes and dropping TCP proxies.
// The chaos tests and `kipass cluster up` use it; every process it starts is a child of
// the caller and dies with it.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGBin is where Debian installs the PostgreSQL 15 server binaries.
const PGBin = "/usr/lib/postgresql/15/bin"

// StandbyName is the application_name of the standby and the name the primary waits
// for in synchronous_standby_names.
const StandbyName = "standby"

// Database is the name of the kipass database the harness creates.
const Database = "kipass"

// Postgres is a primary and a hot standby on loopback ports in Dir. Both roles can
// move: after Promote the standby is the primary.
type Postgres struct {
	Dir    string
	Ports  [2]int // server 0 starts as primary, server 1 as standby
	Logf   func(format string, args ...any)
	mu     sync.Mutex
	procs  [2]*exec.Cmd
	done   [2]chan struct{}
	cred   *syscall.Credential
	uid    int
	gid    int
	synced bool // synchronous_standby_names is set on the primary
}

// NewPostgres prepares a cluster in dir (created if missing) on two free ports.
func NewPostgres(dir string) (*Postgres, error) {
	p := &Postgres{Dir: dir, uid: -1, gid: -1, Logf: func(string, ...any) {}}
	for i := range p.Ports {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		p.Ports[i] = port
	}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: use the postgres system user.
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("cluster: running as root needs a postgres user: %w", err)
		}
		p.uid, _ = strconv.Atoi(u.Uid)
		p.gid, _ = strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(p.uid), Gid: uint32(p.gid)}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := p.chown(dir); err != nil {
		return nil, err
	}
	return p, nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (p *Postgres) chown(path string) error {
	if p.cred == nil {
		return nil
	}
	// Every parent must be traversable by the postgres user.
	for d := path; d != "/" && d != "."; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			os.Chmod(d, fi.Mode().Perm()|0o011)
		}
	}
	return os.Chown(path, p.uid, p.gid)
}

func (p *Postgres) dataDir(i int) string { return filepath.Join(p.Dir, "pg"+strconv.Itoa(i)) }

// DSN is the multi-host connection string the central nodes use: it follows the
// primary wherever it is.
func (p *Postgres) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/%s?target_session_attrs=read-write&sslmode=disable&connect_timeout=2",
		p.Ports[0], p.Ports[1], Database)
}

// ServerDSN is the connection string of server i alone.
func (p *Postgres) ServerDSN(i int, db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=2", p.Ports[i], db)
}

func (p *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(PGBin, name), args...)
	cmd.Dir = p.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

func (p *Postgres) run(name string, args ...string) error {
	out, err := p.command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Init makes the primary with initdb, starts it, creates the kipass database, clones
// the standby with pg_basebackup and starts it streaming, then makes replication
// synchronous.
func (p *Postgres) Init(ctx context.Context) error {
	pd := p.dataDir(0)
	if err := p.run("initdb", "-D", pd, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		return err
	}
	conf := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
wal_log_hints = on
max_connections = 200
shared_buffers = 64MB
fsync = on
synchronous_commit = on
wal_sender_timeout = 5s
wal_receiver_timeout = 5s
wal_retrieve_retry_interval = 500ms
logging_collector = off
`)
	if err := appendFile(filepath.Join(pd, "postgresql.conf"), conf); err != nil {
		return err
	}
	if err := p.Start(0); err != nil {
		return err
	}
	if err := p.exec(ctx, 0, "postgres", "CREATE DATABASE "+Database); err != nil {
		return err
	}
	if err := p.run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(p.Ports[0]), "-U", "postgres",
		"-D", p.dataDir(1), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync"); err != nil {
		return err
	}
	if err := p.configureStandby(1); err != nil {
		return err
	}
	if err := p.Start(1); err != nil {
		return err
	}
	if err := p.WaitStreaming(ctx, 0, 30*time.Second); err != nil {
		return err
	}
	return p.SetSynchronous(ctx, 0, true)
}

// configureStandby points server i at the other server as its primary.
func (p *Postgres) configureStandby(i int) error {
	other := p.Ports[1-i]
	auto := fmt.Sprintf("port = %d\nprimary_conninfo = 'host=127.0.0.1 port=%d user=postgres application_name=%s'\nsynchronous_standby_names = ''\n",
		p.Ports[i], other, StandbyName)
	if err := os.WriteFile(filepath.Join(p.dataDir(i), "postgresql.auto.conf"), []byte(auto), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(p.dataDir(i), "standby.signal"), nil, 0o600); err != nil {
		return err
	}
	return p.chownTree(p.dataDir(i))
}

func (p *Postgres) chownTree(dir string) error {
	if p.cred == nil {
		return nil
	}
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, p.uid, p.gid)
	})
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Start runs server i as a child process (postgres -D, not pg_ctl start, so that it
// dies with the caller) and waits until it accepts connections.
func (p *Postgres) Start(i int) error {
	p.mu.Lock()
	if p.procs[i] != nil {
		p.mu.Unlock()
		return fmt.Errorf("cluster: postgres %d is already running", i)
	}
	cmd := p.command("postgres", "-D", p.dataDir(i), "-p", strconv.Itoa(p.Ports[i]))
	logf, err := os.OpenFile(filepath.Join(p.Dir, fmt.Sprintf("pg%d.log", i)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		p.mu.Unlock()
		return err
	}
	done := make(chan struct{})
	p.procs[i], p.done[i] = cmd, done
	p.mu.Unlock()
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			p.mu.Lock()
			p.procs[i] = nil
			p.mu.Unlock()
			return fmt.Errorf("cluster: postgres %d exited at start; see %s", i, logf.Name())
		default:
		}
		if p.ping(i) == nil {
			p.Logf("postgres %d up on port %d", i, p.Ports[i])
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("cluster: postgres %d did not come up", i)
}

func (p *Postgres) ping(i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.ServerDSN(i, "postgres"))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return c.Ping(ctx)
}

// Running reports whether server i's process is alive.
func (p *Postgres) Running(i int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.procs[i] != nil
}

// Kill sends SIGKILL to server i's whole process group, as a crash or a power loss of
// its machine would, and waits for it to die.
func (p *Postgres) Kill(i int) {
	p.stop(i, syscall.SIGKILL)
}

// Stop shuts server i down quickly (SIGINT: fast shutdown).
func (p *Postgres) Stop(i int) {
	p.stop(i, syscall.SIGINT)
}

func (p *Postgres) stop(i int, sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.procs[i], p.done[i]
	p.procs[i] = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	if sig == syscall.SIGKILL {
		syscall.Kill(-cmd.Process.Pid, sig)
	} else {
		cmd.Process.Signal(sig)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	if sig == syscall.SIGKILL {
		// The backends of a killed postmaster leave on their own; wait until the port is free.
		for k := 0; k < 100 && p.ping(i) == nil; k++ {
			time.Sleep(50 * time.Millisecond)
		}
	}
	p.Logf("postgres %d stopped (%v)", i, sig)
}

// Close stops both servers.
func (p *Postgres) Close() {
	p.Kill(0)
	p.Kill(1)
}

// Promote turns server i from standby into primary with `pg_ctl promote`, as an HA
// manager does after the primary is lost, and stops waiting for a synchronous standby
// (there is none until the old primary is rebuilt).
func (p *Postgres) Promote(ctx context.Context, i int) error {
	if err := p.run("pg_ctl", "promote", "-w", "-t", "30", "-D", p.dataDir(i)); err != nil {
		return err
	}
	p.Logf("postgres %d promoted", i)
	return p.SetSynchronous(ctx, i, false)
}

// SetSynchronous makes commits on primary i wait for the standby (on) or not (off).
func (p *Postgres) SetSynchronous(ctx context.Context, i int, on bool) error {
	v := ""
	if on {
		v = "ANY 1 (" + StandbyName + ")"
	}
	if err := p.exec(ctx, i, "postgres", fmt.Sprintf("ALTER SYSTEM SET synchronous_standby_names = '%s'", v)); err != nil {
		return err
	}
	if err := p.exec(ctx, i, "postgres", "SELECT pg_reload_conf()"); err != nil {
		return err
	}
	p.mu.Lock()
	p.synced = on
	p.mu.Unlock()
	p.Logf("postgres %d synchronous replication %v", i, on)
	return nil
}

// Synchronous reports whether the harness last set the primary synchronous.
func (p *Postgres) Synchronous() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.synced
}

func (p *Postgres) exec(ctx context.Context, i int, db, sql string) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, p.ServerDSN(i, db))
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(cctx, sql)
	return err
}

// Streaming reports whether primary i has the standby streaming.
func (p *Postgres) Streaming(ctx context.Context, i int) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, p.ServerDSN(i, "postgres"))
	if err != nil {
		return false, err
	}
	defer c.Close(context.Background())
	var n int
	err = c.QueryRow(cctx, `SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'`, StandbyName).Scan(&n)
	return n > 0, err
}

// WaitStreaming waits until primary i has the standby streaming.
func (p *Postgres) WaitStreaming(ctx context.Context, i int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := p.Streaming(ctx, i)
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.Join(errors.New("cluster: standby is not streaming"), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Supervise is the part of an HA manager that keeps the primary accepting when the
// standby is lost: while the standby has not streamed for grace, commits stop waiting
// for it (as pg_auto_failover's wait_primary state does); once it streams again they
// wait again. It runs until ctx ends; primary returns the current primary's index.
func (p *Postgres) Supervise(ctx context.Context, primary func() int, grace, every time.Duration) {
	var lostSince time.Time
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		i := primary()
		if !p.Running(i) {
			continue
		}
		ok, err := p.Streaming(ctx, i)
		if err != nil {
			continue
		}
		switch {
		case ok:
			lostSince = time.Time{}
			if !p.Synchronous() {
				p.SetSynchronous(ctx, i, true)
			}
		case lostSince.IsZero():
			lostSince = time.Now()
		case time.Since(lostSince) >= grace && p.Synchronous():
			p.SetSynchronous(ctx, i, false)
		}
	}
}
