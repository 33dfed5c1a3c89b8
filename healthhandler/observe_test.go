package healthhandler_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"

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
	if err := h.WaitChecked(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]healthhandler.CheckStats{}
	for _, cs := range h.Stats().Checks {
		got[cs.Name] = cs
	}
	if cs := got["pool"]; !cs.CountsWorkers || cs.Workers != 3 {
		t.Errorf("pool: Workers %d, CountsWorkers %v; want 3, true", cs.Workers, cs.CountsWorkers)
	}
	if cs := got["lost"]; cs.CountsWorkers {
		t.Errorf("lost: a run without a count reports %d workers", cs.Workers)
	}
	if cs := got["plain"]; cs.CountsWorkers {
		t.Errorf("plain: a check without WorkersMeasurement reports %d workers", cs.Workers)
	}
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
		if cs := h.Stats().Checks[0]; !cs.CountsWorkers || cs.Workers != 1 {
			t.Errorf("one worker beating: Workers %d, CountsWorkers %v; want 1, true", cs.Workers, cs.CountsWorkers)
		}
		settle(h, hb)
	})
}
