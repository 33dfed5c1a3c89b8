package testlog_test

import (
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/internal/testlog"
)

func TestBufferKeepsEveryLineFromConcurrentWriters(t *testing.T) {
	var b testlog.Buffer
	log := b.JSON(slog.LevelInfo)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				log.Info("written", "part", "a")
				_ = b.String()
			}
		})
	}
	wg.Wait()
	assert.Len(t, b.Lines("written", `"part":"a"`), 400)
}

func TestBufferLinesMatchesEverySubstring(t *testing.T) {
	var b testlog.Buffer
	log := b.Text(slog.LevelWarn)
	log.Info("below the level")
	log.Warn("kept", "key", "one")
	log.Warn("kept", "key", "two")
	require.Len(t, b.Lines("kept"), 2)
	assert.Len(t, b.Lines("kept", "key=two"), 1)
	assert.Empty(t, b.Lines("below the level"))
}
