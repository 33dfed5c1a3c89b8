package resilience

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewRedisInvalid(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		opts  Options
		field string
	}{
		{"empty address", Config{}, Options{}, "Addr"},
		{"negative op timeout", Config{Addr: "x:1"}, Options{OpTimeout: -1}, "OpTimeout"},
		{"negative dial timeout", Config{Addr: "x:1"}, Options{DialTimeout: -1}, "DialTimeout"},
		{"negative probe interval", Config{Addr: "x:1"}, Options{ProbeInterval: -time.Second}, "ProbeInterval"},
		{"negative breaker delay", Config{Addr: "x:1"}, Options{BreakerDelay: -time.Second}, "BreakerDelay"},
		{"negative attempts", Config{Addr: "x:1"}, Options{MaxAttempts: -1}, "MaxAttempts"},
		{"negative threshold", Config{Addr: "x:1"}, Options{FailureThreshold: -1}, "FailureThreshold"},
		{"negative pool", Config{Addr: "x:1"}, Options{PoolSize: -1}, "PoolSize"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewRedis(tc.cfg, tc.opts)
			if err == nil {
				r.Close()
			}
			require.Error(t, err, "NewRedis")
			assert.Contains(t, err.Error(), tc.field, "NewRedis, want an error naming %s", tc.field)
		})
	}
	_, err := Wrap(nil, Options{})
	assert.Error(t, err, "Wrap(nil)")
	c := redis.NewClient(&redis.Options{Addr: "x:1"})
	defer c.Close()
	_, err = Wrap(c, Options{OpTimeout: -1})
	assert.Error(t, err, "Wrap with a negative option")
}

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, DefaultOpTimeout, o.OpTimeout, "OpTimeout")
	assert.Equal(t, DefaultDialTimeout, o.DialTimeout, "DialTimeout")
	assert.Equal(t, DefaultMaxAttempts, o.MaxAttempts, "MaxAttempts")
	assert.Equal(t, DefaultRetryBackoff, o.RetryBackoff, "RetryBackoff")
	assert.Equal(t, DefaultRetryMaxBackoff, o.RetryMaxBackoff, "RetryMaxBackoff")
	assert.Equal(t, DefaultFailureThreshold, o.FailureThreshold, "FailureThreshold")
	assert.Equal(t, DefaultBreakerDelay, o.BreakerDelay, "BreakerDelay")
	assert.Equal(t, DefaultProbeInterval, o.ProbeInterval, "ProbeInterval")
	assert.Equal(t, DefaultProbeMaxInterval, o.ProbeMaxInterval, "ProbeMaxInterval")
	assert.NotNil(t, o.Logger, "Logger")
	assert.NotNil(t, o.Now, "Now")
	o, _ = Options{ProbeInterval: time.Second, ProbeMaxInterval: time.Millisecond,
		RetryBackoff: time.Second, RetryMaxBackoff: time.Millisecond}.withDefaults()
	assert.Equal(t, time.Second, o.ProbeMaxInterval, "ProbeMaxInterval below its start, want raised to the start")
	assert.Equal(t, time.Second, o.RetryMaxBackoff, "RetryMaxBackoff below its start, want raised to the start")
}
