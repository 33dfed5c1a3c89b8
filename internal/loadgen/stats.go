package loadgen

import (
	"cmp"
	"slices"
	"time"
)

// summarize computes a Result over samples, which it keeps (sorted by
// start) as Result.Samples.
func summarize(samples []Sample, elapsed time.Duration, errText map[string]int) Result {
	r := Result{Elapsed: elapsed, Status: map[int]int{}, ErrorText: errText, Samples: samples}
	if r.ErrorText == nil {
		r.ErrorText = map[string]int{}
	}
	lat := make([]time.Duration, len(samples))
	for i, s := range samples {
		lat[i] = s.Latency
		if s.Err {
			r.Errors++
			continue
		}
		r.Requests++
		r.Status[s.Status]++
		if s.Class != "" {
			if r.Classes == nil {
				r.Classes = map[string]int{}
			}
			r.Classes[s.Class]++
		}
	}
	if elapsed > 0 {
		r.Throughput = float64(r.Requests) / elapsed.Seconds()
	}
	slices.Sort(lat)
	r.P50 = Percentile(lat, 0.50)
	r.P90 = Percentile(lat, 0.90)
	r.P99 = Percentile(lat, 0.99)
	if len(lat) > 0 {
		r.Max = lat[len(lat)-1]
	}
	return r
}

// Percentile returns the nearest-rank p-quantile (p from 0 to 1) of
// sorted, a slice in ascending order; zero when it is empty.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// Ceiling of p*n, tolerant of products such as 0.07*100 that land a hair
	// above a whole number.
	rank := int(p*float64(n) + 0.999999999)
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

func sortByStart(s []Sample) {
	slices.SortStableFunc(s, func(a, b Sample) int { return cmp.Compare(a.Start, b.Start) })
}
