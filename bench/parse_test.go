//go:build unix

package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestParseCommandStats(t *testing.T) {
	tests := []struct {
		name string
		info string
		want map[string]int64
	}{
		{name: "empty", info: "# Commandstats\r\n", want: map[string]int64{}},
		{
			name: "two commands",
			info: "# Commandstats\r\ncmdstat_get:calls=12,usec=34,usec_per_call=2.83,rejected_calls=0,failed_calls=0\r\n" +
				"cmdstat_ping:calls=3,usec=1,usec_per_call=0.33\r\n",
			want: map[string]int64{"get": 12, "ping": 3},
		},
		{
			name: "other sections and junk ignored",
			info: "# CPU\r\nused_cpu_sys:1.5\r\ncmdstat_set:calls=x\r\ncmdstat_del:usec=4,calls=7\r\n",
			want: map[string]int64{"del": 7},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, parseCommandStats(tc.info), "parseCommandStats(%q)", tc.info)
		})
	}
}

func TestCommandDelta(t *testing.T) {
	before := map[string]int64{"get": 10, "info": 4, "ping": 1}
	after := map[string]int64{"get": 25, "info": 6, "ping": 1, "set": 2}
	want := map[string]int64{"get": 15, "set": 2}
	assert.Equal(t, want, commandDelta(before, after), "commandDelta (INFO itself and unchanged commands left out)")
	assert.Equal(t, int64(17), sumCalls(want), "sumCalls(%v)", want)
}

func TestParseCPU(t *testing.T) {
	info := "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:0.750000\r\nused_cpu_sys_children:9.0\r\n"
	assert.Equal(t, 2*time.Second, parseCPU(info), "parseCPU(%q)", info)
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{name: "empty", in: nil, want: 0},
		{name: "one", in: []float64{3}, want: 3},
		{name: "odd", in: []float64{3, 1, 2}, want: 2},
		{name: "even", in: []float64{4, 1, 3, 2}, want: 2.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, median(tc.in), "median(%v)", tc.in)
		})
	}
}
