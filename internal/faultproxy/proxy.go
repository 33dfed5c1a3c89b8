package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// Mode is what the proxy does with the bytes it carries.
type Mode int32

// The modes of a [Proxy]. The zero value is Pass.
const (
	// Pass forwards bytes both ways unchanged.
	Pass Mode = iota
	// Blackhole accepts connections and forwards or answers nothing: bytes
	// from either side are read and dropped. A connection accepted in this
	// mode is never connected upstream and stays silent even after the
	// mode changes; a connection opened before keeps its upstream and
	// carries bytes again once the mode is Pass (the requests dropped in
	// between stay lost).
	Blackhole
	// Reset forwards part of the next chunk of reply bytes from upstream,
	// then resets the client connection (RST) and closes the upstream one.
	Reset
	// Truncate forwards part of the next chunk of reply bytes from
	// upstream, then closes the client connection normally (FIN) and the
	// upstream one.
	Truncate
)

// String returns "pass", "blackhole", "reset" or "truncate".
func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Blackhole:
		return "blackhole"
	case Reset:
		return "reset"
	case Truncate:
		return "truncate"
	}
	return fmt.Sprintf("Mode(%d)", int32(m))
}

// Options tune a [Proxy]. The zero value is ready to use.
type Options struct {
	// Mode is the mode the proxy starts in. Zero means [Pass].
	Mode Mode
	// CutAfter is how many bytes of the reply chunk [Reset] and [Truncate]
	// forward before cutting the connection; it is always capped at one
	// byte less than the chunk, so a reply is never delivered whole. Zero
	// means half the chunk.
	CutAfter int
	// Rate throttles the proxy to this many bytes per second in each
	// direction, shared by all its connections, as a slow shared network
	// link. Zero means no limit.
	Rate int64
}

// Stats counts what a [Proxy] did since it was created.
type Stats struct {
	// Accepted counts client connections accepted; Active those still open.
	Accepted, Active int64
	// DialErrors counts connections closed because upstream refused them.
	DialErrors int64
	// Resets and Truncations count connections cut by [Reset] and
	// [Truncate].
	Resets, Truncations int64
	// Dropped counts bytes read and dropped by [Blackhole].
	Dropped int64
}

// Proxy forwards TCP connections from a loopback port to an upstream
// address, with a fault mode switchable at run time. It is safe for
// concurrent use. Build one with [New]; the zero value is not usable.
type Proxy struct {
	upstream string
	cutAfter int
	ln       net.Listener
	mode     atomic.Int32

	ctx    context.Context // ends at Close, to abort dials
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[*pipe]struct{}
	closed bool

	accepted, dialErrors, resets, truncations, dropped atomic.Int64

	up, down *link // requests and replies, throttled to Options.Rate
}

// New starts a proxy on a free 127.0.0.1 port that forwards to upstream
// (host:port). It fails if it cannot listen or opts is invalid; upstream
// need not be up yet.
func New(upstream string, opts Options) (*Proxy, error) {
	if upstream == "" {
		return nil, errors.New("faultproxy: empty upstream address")
	}
	if opts.Rate < 0 {
		return nil, fmt.Errorf("faultproxy: Options.Rate is negative (%d)", opts.Rate)
	}
	if opts.CutAfter < 0 {
		return nil, fmt.Errorf("faultproxy: Options.CutAfter is negative (%d)", opts.CutAfter)
	}
	if opts.Mode < Pass || opts.Mode > Truncate {
		return nil, fmt.Errorf("faultproxy: unknown mode %v", opts.Mode)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		upstream: upstream,
		cutAfter: opts.CutAfter,
		ln:       ln,
		ctx:      ctx,
		cancel:   cancel,
		conns:    make(map[*pipe]struct{}),
		up:       &link{rate: opts.Rate},
		down:     &link{rate: opts.Rate},
	}
	p.mode.Store(int32(opts.Mode))
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the host:port clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Upstream is the address the proxy forwards to.
func (p *Proxy) Upstream() string { return p.upstream }

// SetMode switches the mode for new and open connections alike.
func (p *Proxy) SetMode(m Mode) { p.mode.Store(int32(m)) }

// Mode returns the current mode.
func (p *Proxy) Mode() Mode { return Mode(p.mode.Load()) }

// Stats returns a snapshot of the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	active := int64(len(p.conns))
	p.mu.Unlock()
	return Stats{
		Accepted:    p.accepted.Load(),
		Active:      active,
		DialErrors:  p.dialErrors.Load(),
		Resets:      p.resets.Load(),
		Truncations: p.truncations.Load(),
		Dropped:     p.dropped.Load(),
	}
}

// CloseConns closes every open connection (with a FIN on both sides) and
// keeps the listener, so that clients must reconnect.
func (p *Proxy) CloseConns() {
	p.mu.Lock()
	open := make([]*pipe, 0, len(p.conns))
	for c := range p.conns {
		open = append(open, c)
	}
	p.mu.Unlock()
	for _, c := range open {
		c.close()
	}
}

// Close stops accepting, closes every connection and waits until all of
// the proxy's goroutines have returned. It is safe to call more than once.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	err := p.ln.Close()
	p.CloseConns()
	p.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("faultproxy close: %w", err)
	}
	return nil
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		p.accepted.Add(1)
		pc := &pipe{p: p, client: c, mode: p.Mode()}
		if !p.track(pc) {
			_ = c.Close()
			return
		}
		p.wg.Add(1)
		go pc.run()
	}
}

// track registers c; it reports false when the proxy is closing.
func (p *Proxy) track(c *pipe) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c *pipe) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}
