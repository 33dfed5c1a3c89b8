package faultproxy

import (
	"net"
	"sync"
)

// chunkSize is the read buffer of each direction of a connection.
const chunkSize = 32 << 10

// pipe is one client connection and, unless it was accepted in
// [Blackhole] mode, its upstream connection.
type pipe struct {
	p      *Proxy
	client net.Conn
	mode   Mode // at accept

	mu       sync.Mutex
	upstream net.Conn // nil until dialled, and for ever when blackholed
	cut      bool     // Reset or Truncate ended it
	done     bool

	closeOnce sync.Once
}

// run serves the connection until either side ends or the proxy closes.
func (c *pipe) run() {
	defer c.p.wg.Done()
	defer c.p.untrack(c)
	defer c.close()

	if c.mode == Blackhole {
		c.drain(c.client)
		return
	}
	var d net.Dialer
	up, err := d.DialContext(c.p.ctx, "tcp", c.p.upstream)
	if err != nil {
		c.p.dialErrors.Add(1)
		return
	}
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		_ = up.Close()
		return
	}
	c.upstream = up
	c.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.replies(up)
		// A truncated connection keeps reading the client until it
		// hangs up, so that the FIN is not turned into a reset by
		// unread bytes.
		if c.isCut() {
			return
		}
		c.close()
	}()
	c.requests(up)
	c.close()
	wg.Wait()
}

// requests copies client bytes upstream, dropping them while blackholed
// and after a cut.
func (c *pipe) requests(up net.Conn) {
	buf := make([]byte, chunkSize)
	for {
		n, err := c.client.Read(buf)
		if n > 0 {
			if c.p.Mode() == Blackhole || c.isCut() {
				c.p.dropped.Add(int64(n))
			} else if werr := c.p.up.write(c.p.ctx, up, buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// replies copies upstream bytes to the client, applying the mode to each
// chunk.
func (c *pipe) replies(up net.Conn) {
	buf := make([]byte, chunkSize)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			switch m := c.p.Mode(); m {
			case Blackhole:
				c.p.dropped.Add(int64(n))
			case Reset, Truncate:
				_, _ = c.client.Write(buf[:c.keep(n)])
				c.cutOff(m)
				return
			default:
				if werr := c.p.down.write(c.p.ctx, c.client, buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// keep is how many bytes of an n-byte chunk are forwarded before a cut:
// always fewer than n.
func (c *pipe) keep(n int) int {
	k := c.p.cutAfter
	if k <= 0 {
		k = n / 2
	}
	return min(k, n-1)
}

// cutOff ends the connection the way mode m says.
func (c *pipe) cutOff(m Mode) {
	c.mu.Lock()
	c.cut = true
	up := c.upstream
	c.mu.Unlock()
	if up != nil {
		_ = up.Close()
	}
	if m == Reset {
		c.p.resets.Add(1)
		if tc, ok := c.client.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.close()
		return
	}
	c.p.truncations.Add(1)
	if tc, ok := c.client.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		return
	}
	c.close()
}

func (c *pipe) isCut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut
}

// drain reads and drops everything from conn until it fails.
func (c *pipe) drain(conn net.Conn) {
	buf := make([]byte, chunkSize)
	for {
		n, err := conn.Read(buf)
		c.p.dropped.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// close closes both connections; it is safe to call more than once and
// from any goroutine.
func (c *pipe) close() {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.done = true
		up := c.upstream
		c.mu.Unlock()
		_ = c.client.Close()
		if up != nil {
			_ = up.Close()
		}
	})
}
