package resilience

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNearCacheNegativeOptionIsInvalid: a negative near cache setting is
// refused with ErrInvalidOption, naming the field, before anything runs.
func TestNearCacheNegativeOptionIsInvalid(t *testing.T) {
	for name, o := range map[string]NearCacheOptions{
		"MaxBytes":      {MaxBytes: -1},
		"MaxEntries":    {MaxEntries: -1},
		"MaxStaleness":  {MaxStaleness: -time.Second},
		"DrainInterval": {DrainInterval: -time.Millisecond},
		"Heartbeat":     {Heartbeat: -time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			rdb, err := NewRedis(Config{Addr: "127.0.0.1:1"}, Options{NearCache: &o})
			require.ErrorIs(t, err, ErrInvalidOption)
			assert.Nil(t, rdb)
			assert.ErrorContains(t, err, "Options.NearCache."+name)
		})
	}
}
