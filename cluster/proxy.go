package cluster

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards TCP connections from a loopback port to a target. While partitioned
// it drops: it accepts connections and reads their bytes but forwards nothing and
// answers nothing, as a lost network path does. Healing resets the connections that
// lived through the partition, as a NAT or firewall timeout would.
type Proxy struct {
	Target string
	// Delay holds each chunk this long before forwarding it, in both directions: a
	// database in another zone, say. Set it before the first connection.
	Delay time.Duration

	ln      net.Listener
	dropped atomic.Bool
	mu      sync.Mutex
	conns   map[net.Conn]bool
	wg      sync.WaitGroup
}

// NewProxy listens on a free loopback port and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Target: target, ln: ln, conns: make(map[net.Conn]bool)}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// URL is the proxy's base URL for HTTP.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// Partition starts dropping everything.
func (p *Proxy) Partition() { p.dropped.Store(true) }

// Heal forwards again and resets the connections that saw the partition.
func (p *Proxy) Heal() {
	p.dropped.Store(false)
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// Close stops the proxy and closes its connections.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.Heal()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *Proxy) handle(c net.Conn) {
	defer p.wg.Done()
	p.track(c, true)
	defer p.track(c, false)
	defer c.Close()
	if p.dropped.Load() {
		io.Copy(io.Discard, c) // a black hole until healing closes it
		return
	}
	up, err := net.Dial("tcp", p.Target)
	if err != nil {
		return
	}
	p.track(up, true)
	defer p.track(up, false)
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { p.pipe(up, c); done <- struct{}{} }()
	go func() { p.pipe(c, up); done <- struct{}{} }()
	<-done
}

// pipe copies src to dst, discarding what arrives while partitioned.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && p.Delay > 0 {
			time.Sleep(p.Delay)
		}
		if n > 0 && !p.dropped.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}
