//go:build unix

package redisproc

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func needPrograms(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s not found: %v", n, err)
		}
	}
}

func TestSlot(t *testing.T) {
	// The values redis-server's CLUSTER KEYSLOT gives.
	for key, want := range map[string]int{"": 0, "foo": 12182, "bar": 5061, "{user1000}.following": 3443, "{user1000}.followers": 3443, "foo{}{bar}": 8363} {
		assert.Equal(t, want, Slot(key), "Slot(%q)", key)
	}
}

func TestStartClusterFailover(t *testing.T) {
	needPrograms(t, "redis-server", "redis-cli")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := StartCluster(ctx, ClusterOptions{})
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	slot := Slot("foo")
	m, err := c.MasterFor(ctx, slot, "")
	require.NoError(t, err)
	c.Node(m).Kill()
	start := time.Now()
	nm, _, err := c.WaitPromoted(ctx, slot, m)
	require.NoError(t, err)
	t.Logf("slot %d: %s -> %s in %v", slot, m, nm, time.Since(start))
}

func TestStartSentinelFailover(t *testing.T) {
	needPrograms(t, "redis-server", "redis-sentinel")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := StartSentinel(ctx, SentinelOptions{})
	require.NoError(t, err)
	defer func() { _ = st.Close() }()
	m, err := st.MasterAddr(ctx)
	require.NoError(t, err)
	require.Equal(t, st.Data[0].Addr(), m, "master")
	require.NoError(t, st.Failover(ctx))
	start := time.Now()
	nm, _, err := st.WaitNewMaster(ctx, m)
	require.NoError(t, err)
	t.Logf("failover %s -> %s in %v", m, nm, time.Since(start))
	st.Node(nm).Kill()
	start = time.Now()
	nm2, _, err := st.WaitNewMaster(ctx, nm)
	require.NoError(t, err)
	t.Logf("kill -9: %s -> %s in %v", nm, nm2, time.Since(start))
}
