package celery

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/healthhandler/internal/detail"
)

// celeryFuzzSeeds are messages as a Celery 5.2 worker and kombu 5.2
// publish them on a Redis broker, and a few near misses.
var celeryFuzzSeeds = []string{
	`{"body": "eyJob3N0bmFtZSI6ICJ3MUB2bSIsICJ1dGNvZmZzZXQiOiAwLCAicGlkIjogNDAyOSwgImNsb2NrIjogMiwgImZyZXEiOiAyLjAsICJhY3RpdmUiOiAwLCAicHJvY2Vzc2VkIjogMCwgImxvYWRhdmciOiBbMTIuMzcsIDcuNTYsIDMuNTNdLCAic3dfaWRlbnQiOiAicHktY2VsZXJ5IiwgInN3X3ZlciI6ICI1LjIuNiIsICJzd19zeXMiOiAiTGludXgiLCAidGltZXN0YW1wIjogMTc5NTQzOTQyMi44NTM1NzUsICJ0eXBlIjogIndvcmtlci1oZWFydGJlYXQifQ==", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"hostname": "w1@vm"}, "properties": {"delivery_mode": 1, "delivery_info": {"exchange": "celeryev", "routing_key": "worker.heartbeat"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "98227842-4660-41d1-9353-85c4ca131467"}}`,
	`{"body": "eyJ3MUB2bSI6IHsib2siOiAicG9uZyJ9fQ==", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"ticket": "d3a42f23-c61b-4f5a-bc28-802046afb142", "clock": 3}, "properties": {"delivery_mode": 1, "delivery_info": {"exchange": "reply.celery.pidbox", "routing_key": "df9d3bf6-c71f-3b41-bb64-5c23108b636e"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "2b84394c-8022-4d74-b243-eca2e3ac30f2"}}`,
	`{"body": "{\"hostname\": \"w\", \"type\": \"worker-offline\"}", "content-type": "application/json"}`,
	`{"body": "{\"hostname\": \"w\", \"type\": \"worker-online\", \"freq\": 1e308, \"timestamp\": -1}", "content-type": "application/json"}`,
	`{"body": "e30=", "content-type": "application/json; charset=utf-8", "properties": {"body_encoding": "base64"}}`,
	`{"body": null}`,
	`[]`,
	``,
}

const celeryFuzzTicket = "d3a42f23-c61b-4f5a-bc28-802046afb142"

func FuzzDecodeCeleryEvent(f *testing.F) {
	for _, s := range celeryFuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := decodeCeleryEvent(data)
		if err != nil {
			require.ErrorIs(t, err, detail.ErrMalformed)
			return
		}
		require.NoError(t, detail.CheckHostname(ev.Hostname), "accepted hostname %q", ev.Hostname)
		switch ev.Type {
		case celeryWorkerOnline, celeryWorkerHeartbeat:
			require.Positive(t, ev.Freq, "accepted %+v", ev)
			require.LessOrEqual(t, ev.Freq, maxCeleryFreq, "accepted %+v", ev)
			require.GreaterOrEqual(t, ev.Active, int64(0), "accepted %+v", ev)
			require.GreaterOrEqual(t, ev.Processed, int64(0), "accepted %+v", ev)
			// The listener adds twice the interval to a time.
			now := time.Now()
			require.True(t, now.Add(2*ev.Freq).After(now), "freq %v overflows", ev.Freq)
		}
	})
}

func FuzzDecodeCeleryReply(f *testing.F) {
	for _, s := range celeryFuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		hosts, err := decodeCeleryReply(data, celeryFuzzTicket)
		if err != nil {
			require.True(t, errors.Is(err, detail.ErrMalformed) || errors.Is(err, errStrayReply),
				"error %v wraps neither detail.ErrMalformed nor errStrayReply", err)
			return
		}
		require.NotEmpty(t, hosts, "no error and no hosts")
		for _, h := range hosts {
			require.NoError(t, detail.CheckHostname(h), "accepted hostname %q", h)
		}
	})
}

// FuzzCeleryErrorText checks that what a decoder says about bad input,
// which a report shows, stays short and one line, whatever the input.
func FuzzCeleryErrorText(f *testing.F) {
	for _, s := range celeryFuzzSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"body":"e30=","content-type":"` + strings.Repeat("x\n", 100) + `"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := decodeCeleryEvent(data)
		if err == nil {
			return
		}
		msg := err.Error()
		require.LessOrEqual(t, len(msg), 200, "error text %q is too long", msg)
		require.False(t, strings.ContainsAny(msg, "\r\n"), "error text %q has several lines", msg)
		require.True(t, utf8.ValidString(msg), "error text %q is not UTF-8", msg)
	})
}
