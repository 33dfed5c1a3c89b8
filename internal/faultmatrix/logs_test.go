package faultmatrix

import (
	"context"
	"fmt"
	"strings"

	"github.com/steadfast-go/steadfast/internal/testlog"
)

// redisLogger makes a testlog.Buffer a go-redis logger, so that go-redis's
// own lines are checked for secrets too.
type redisLogger struct{ *testlog.Buffer }

// Printf writes one go-redis log line.
func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	_, _ = fmt.Fprintf(l.Buffer, "go-redis: "+format+"\n", v...)
}

// linesWith returns the lines of b that contain any of secrets.
func linesWith(b *testlog.Buffer, secrets ...string) []string {
	var bad []string
	for _, line := range b.Lines() {
		for _, s := range secrets {
			if s != "" && strings.Contains(line, s) {
				bad = append(bad, strings.TrimSpace(line))
				break
			}
		}
	}
	return bad
}
