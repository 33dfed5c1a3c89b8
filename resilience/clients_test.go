package resilience

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/assert"
)

func TestClientOptions(t *testing.T) {
	o, _ := Options{OpTimeout: 70 * time.Millisecond, PoolSize: 3}.withDefaults()
	ro := clientOptions(Config{Addr: "cache:6380", Username: "app", Password: testPassword, DB: 2, TLS: true}, o)
	assert.Equal(t, -1, ro.MaxRetries, "go-redis MaxRetries")
	assert.True(t, ro.ContextTimeoutEnabled, "go-redis ContextTimeoutEnabled")
	assert.Equal(t, 56*time.Millisecond, ro.PoolTimeout, "go-redis PoolTimeout")
	assert.Equal(t, 3, ro.PoolSize, "go-redis PoolSize")
	assert.Equal(t, DefaultDialTimeout, ro.DialTimeout, "go-redis DialTimeout")
	assert.Equal(t, "tcp", ro.Network, "go-redis Network")
	assert.Equal(t, 2, ro.DB, "go-redis DB")
	if assert.NotNil(t, ro.TLSConfig, "TLS config, want one for server name cache") {
		assert.Equal(t, "cache", ro.TLSConfig.ServerName, "TLS config's server name")
	}
}

// TestNoMaintenanceNotifications: the clients NewRedis builds, of every
// topology, have maintenance notifications off: go-redis turns them on by
// default for RESP3, with a cleanup goroutine that outlived Close and
// tripped the leak checks of the packages that use these clients.
func TestNoMaintenanceNotifications(t *testing.T) {
	o, _ := Options{}.withDefaults()
	for name, mn := range map[string]*maintnotifications.Config{
		"standalone": clientOptions(Config{Addr: "cache:6379"}, o).MaintNotificationsConfig,
		"cluster":    clusterOptions(Config{Topology: TopologyCluster, Addrs: []string{"a:7000"}}, o).MaintNotificationsConfig,
	} {
		if assert.NotNil(t, mn, name) {
			assert.Equal(t, maintnotifications.ModeDisabled, mn.Mode, name)
		}
	}
}
