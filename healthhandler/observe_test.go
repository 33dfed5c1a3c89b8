package healthhandler_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/resilience"
)

// TestCheckStatsWorkers: a worker check's live count reaches Stats, summed
// over instances; a run that could not count, and a check that counts no
// workers, report none.
func TestCheckStatsWorkers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := newHandler(t, healthhandler.Options{})
	counted := func(obs ...healthhandler.Observation) healthhandler.Check {
		return healthhandler.Check{Name: "n", WorkersMeasurement: "workers", Run: func(context.Context) ([]healthhandler.Observation, error) {
			return obs, nil
		}}
	}
	two := counted(
		healthhandler.Observation{Measurement: "workers", ComponentID: "a", Value: 1},
		healthhandler.Observation{Measurement: "workers", ComponentID: "b", Value: 2},
		healthhandler.Observation{Measurement: "active", Value: 7},
	)
	two.Name = "pool"
	unknown := counted(healthhandler.Observation{Measurement: "workers", Status: healthhandler.StatusFail})
	unknown.Name = "lost"
	plain := healthhandler.Check{Name: "plain", Run: func(context.Context) ([]healthhandler.Observation, error) {
		return []healthhandler.Observation{{Measurement: "workers", Value: 3}}, errors.New("down")
	}}
	mustAdd(t, h, two)
	mustAdd(t, h, unknown)
	mustAdd(t, h, plain)
	require.NoError(t, h.WaitChecked(ctx))
	got := map[string]healthhandler.CheckStats{}
	for _, cs := range h.Stats().Checks {
		got[cs.Name] = cs
	}
	assert.True(t, got["pool"].CountsWorkers, "pool: CountsWorkers")
	assert.Equal(t, 3, got["pool"].Workers, "pool: Workers")
	assert.False(t, got["lost"].CountsWorkers, "lost: a run without a count reports %d workers", got["lost"].Workers)
	assert.False(t, got["plain"].CountsWorkers, "plain: a check without WorkersMeasurement reports %d workers", got["plain"].Workers)
}

// TestWorkersCheckStats: the heartbeat check counts its live workers into
// Stats, and a Redis that is gone gives no count rather than zero.
func TestWorkersCheckStats(t *testing.T) {
	m := miniredis.RunT(t)
	synctest.Test(t, func(t *testing.T) {
		hb, _ := startWorker(t, m, "w1", nil)
		api := newRedis(t, resilience.Config{Addr: m.Addr()}, resilience.Options{})
		h := newHandler(t, healthhandler.Options{})
		mustAdd(t, h, mustCheck(t)(healthhandler.Workers(api, healthhandler.WorkersOptions{Key: workersKey, Interval: 5 * time.Second})))
		synctest.Wait()
		cs := h.Stats().Checks[0]
		assert.True(t, cs.CountsWorkers, "one worker beating: CountsWorkers")
		assert.Equal(t, 1, cs.Workers, "one worker beating: Workers")
		settle(h, hb)
	})
}
