package loadgen

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, v := range n {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{name: "empty", sorted: nil, p: 0.5, want: 0},
		{name: "one", sorted: ms(7), p: 0.99, want: 7 * time.Millisecond},
		{name: "median of four", sorted: ms(1, 2, 3, 4), p: 0.5, want: 2 * time.Millisecond},
		{name: "p0 is the minimum", sorted: ms(1, 2, 3), p: 0, want: time.Millisecond},
		{name: "p100 is the maximum", sorted: ms(1, 2, 3), p: 1, want: 3 * time.Millisecond},
		{name: "p99 of 100", sorted: hundred, p: 0.99, want: 99 * time.Millisecond},
		{name: "p7 of 100, a float hair above 7", sorted: hundred, p: 0.07, want: 7 * time.Millisecond},
		{name: "p90 of 100", sorted: hundred, p: 0.90, want: 90 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Percentile(tc.sorted, tc.p), "Percentile(%v, %v)", tc.sorted, tc.p)
		})
	}
}

func TestBetween(t *testing.T) {
	ms := time.Millisecond
	res := Result{Samples: []Sample{
		{Start: 0, Latency: 1 * ms, Status: 200, Class: "hit"},
		{Start: 10 * ms, Latency: 2 * ms, Status: 200, Class: "hit"},
		{Start: 20 * ms, Latency: 30 * ms, Status: 0, Err: true},
		{Start: 30 * ms, Latency: 4 * ms, Status: 503, Class: "bypass"},
		{Start: 40 * ms, Latency: 5 * ms, Status: 200, Class: "hit"},
	}}
	tests := []struct {
		name               string
		from, to           time.Duration
		requests, errors   int
		max                time.Duration
		hits, serverErrors int
	}{
		{name: "all", from: 0, to: 50 * ms, requests: 4, errors: 1, max: 30 * ms, hits: 3, serverErrors: 1},
		{name: "end is exclusive", from: 0, to: 10 * ms, requests: 1, errors: 0, max: 1 * ms, hits: 1},
		{name: "middle", from: 10 * ms, to: 35 * ms, requests: 2, errors: 1, max: 30 * ms, hits: 1, serverErrors: 1},
		{name: "empty window", from: 100 * ms, to: 200 * ms},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := res.Between(tc.from, tc.to)
			assert.Equal(t, tc.requests, got.Requests, "Between(%v, %v): requests", tc.from, tc.to)
			assert.Equal(t, tc.errors, got.Errors, "Between(%v, %v): errors", tc.from, tc.to)
			assert.Equal(t, tc.max, got.Max, "Between(%v, %v): max", tc.from, tc.to)
			assert.Equal(t, tc.hits, got.Classes["hit"], "Between(%v, %v): hits", tc.from, tc.to)
			assert.Equal(t, tc.serverErrors, got.ServerErrors(), "Between(%v, %v): 5xx", tc.from, tc.to)
			assert.Equal(t, tc.to-tc.from, got.Elapsed, "Between(%v, %v): Elapsed", tc.from, tc.to)
		})
	}
}
