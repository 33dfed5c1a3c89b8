package faultmatrix

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// logBuffer collects log lines from any number of goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Printf makes a logBuffer a go-redis logger, so that go-redis's own lines
// are checked for secrets too.
func (b *logBuffer) Printf(_ context.Context, format string, v ...any) {
	_, _ = fmt.Fprintf(b, "go-redis: "+format+"\n", v...)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logger returns a logger that writes every level into b.
func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// linesWith returns the lines of b that contain any of secrets.
func (b *logBuffer) linesWith(secrets ...string) []string {
	var bad []string
	for line := range strings.Lines(b.String()) {
		for _, s := range secrets {
			if s != "" && strings.Contains(line, s) {
				bad = append(bad, strings.TrimSpace(line))
				break
			}
		}
	}
	return bad
}
