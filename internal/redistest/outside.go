package redistest

import "testing"

// Outside runs functions on a goroutine outside any testing/synctest
// bubble, for what must not join one, such as a restarted test server's
// accept loop (it would keep the bubble's clock from ever advancing).
type Outside struct {
	fns  chan func()
	done chan struct{}
}

// NewOutside must be called outside the bubble: its channels then belong
// to no bubble, so both sides may use them. It stops when the test ends.
func NewOutside(t testing.TB) *Outside {
	o := &Outside{fns: make(chan func()), done: make(chan struct{})}
	go func() {
		for f := range o.fns {
			f()
			o.done <- struct{}{}
		}
	}()
	t.Cleanup(func() { close(o.fns) })
	return o
}

// Run runs f outside the bubble and waits for it.
func (o *Outside) Run(f func()) {
	o.fns <- f
	<-o.done
}
