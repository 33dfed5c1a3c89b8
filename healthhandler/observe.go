package healthhandler

// Live worker counts, for Stats and metrics. A worker check (Workers,
// Celery, asynq) names the measurement that counts live workers in
// [Check.WorkersMeasurement]; each run that reports a number there updates
// [CheckStats.Workers].

// countWorkers returns the sum of the integer values of the observations
// named measurement, and whether there was one. Observations from a
// failed read carry no value, and count as none.
func countWorkers(obs []Observation, measurement string) (int64, bool) {
	if measurement == "" {
		return 0, false
	}
	var n int64
	found := false
	for _, ob := range obs {
		if ob.Measurement != measurement {
			continue
		}
		switch v := ob.Value.(type) {
		case int:
			n += int64(v)
		case int64:
			n += v
		default:
			continue
		}
		found = true
	}
	return n, found
}

// noteWorkers records the worker count of a run's raw observations. The
// runner keeps the count plus one, so that its zero value means none
// counted.
func (rn *runner) noteWorkers(obs []Observation, failed bool) {
	n, ok := countWorkers(obs, rn.check.WorkersMeasurement)
	if failed || !ok {
		rn.workers.Store(0)
		return
	}
	rn.workers.Store(n + 1)
}

// liveWorkers returns the latest run's worker count, and whether it
// counted any.
func (rn *runner) liveWorkers() (int, bool) {
	n := rn.workers.Load()
	return int(n - 1), n > 0
}
