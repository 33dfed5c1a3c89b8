package celery

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/healthhandler/internal/detail"
)

// kombuMessage wraps body as kombu's Redis transport does. It only
// asserts, so it may run on any goroutine (fake workers build their
// replies with it); it returns "" when body cannot be encoded.
func kombuMessage(t testing.TB, body any, headers map[string]any) string {
	t.Helper()
	b, err := json.Marshal(body)
	if !assert.NoError(t, err) {
		return ""
	}
	if headers == nil {
		headers = map[string]any{}
	}
	env, err := json.Marshal(map[string]any{
		"body":             base64.StdEncoding.EncodeToString(b),
		"content-encoding": "utf-8",
		"content-type":     "application/json",
		"headers":          headers,
		"properties": map[string]any{
			"delivery_mode": 1, "priority": 0, "body_encoding": "base64",
			"delivery_info": map[string]string{"exchange": "celeryev", "routing_key": "worker.heartbeat"},
			"delivery_tag":  "7f1b32b9-31ab-4aaa-a8ea-f56327745f29",
		},
	})
	if !assert.NoError(t, err) {
		return ""
	}
	return string(env)
}

// workerEvent is a worker event body as Celery 5 sends it.
func workerEvent(typ, host string, freq float64, active, processed int, ts float64) map[string]any {
	return map[string]any{
		"hostname": host, "utcoffset": 0, "pid": 4029, "clock": 2, "freq": freq,
		"active": active, "processed": processed, "loadavg": []float64{0.5, 0.3, 0.1},
		"sw_ident": "py-celery", "sw_ver": "5.2.6", "sw_sys": "Linux",
		"timestamp": ts, "type": typ,
	}
}

func TestDecodeCeleryEvent(t *testing.T) {
	ts := 1795439422.853575
	hb := kombuMessage(t, workerEvent("worker-heartbeat", "w1@vm", 2.0, 3, 12, ts), map[string]any{"hostname": "w1@vm"})
	raw, _ := json.Marshal(map[string]any{
		"body":         `{"hostname": "w2@vm", "type": "worker-online", "freq": 5, "timestamp": 10}`,
		"content-type": "application/json", "properties": map[string]any{},
	})
	tests := []struct {
		name    string
		msg     string
		want    celeryEvent
		wantErr string // substring; empty means no error
	}{
		{name: "heartbeat", msg: hb, want: celeryEvent{
			Type: "worker-heartbeat", Hostname: "w1@vm", Freq: 2 * time.Second, Active: 3, Processed: 12,
			Timestamp: time.Unix(1795439422, 853575000),
		}},
		{name: "online", msg: kombuMessage(t, workerEvent("worker-online", "w1@vm", 0.5, 0, 0, ts), nil),
			want: celeryEvent{Type: "worker-online", Hostname: "w1@vm", Freq: 500 * time.Millisecond, Timestamp: time.Unix(1795439422, 853575000)}},
		{name: "offline needs no freq", msg: kombuMessage(t, map[string]any{"type": "worker-offline", "hostname": "w1@vm"}, nil),
			want: celeryEvent{Type: "worker-offline", Hostname: "w1@vm"}},
		{name: "other type ignored", msg: kombuMessage(t, map[string]any{"type": "worker-custom", "hostname": "w1@vm"}, nil),
			want: celeryEvent{Type: "worker-custom", Hostname: "w1@vm"}},
		{name: "body not base64 encoded", msg: string(raw),
			want: celeryEvent{Type: "worker-online", Hostname: "w2@vm", Freq: 5 * time.Second, Timestamp: time.Unix(10, 0)}},
		{name: "not JSON", msg: "hello", wantErr: "not kombu JSON"},
		{name: "JSON array", msg: "[1,2]", wantErr: "not kombu JSON"},
		{name: "no body", msg: `{"content-type":"application/json"}`, wantErr: "no body"},
		{name: "bad base64", msg: `{"body":"!!!","content-type":"application/json","properties":{"body_encoding":"base64"}}`, wantErr: "not base64"},
		{name: "pickle", msg: `{"body":"gAN9cQAu","content-type":"application/x-python-serialize","properties":{"body_encoding":"base64"}}`, wantErr: "not application/json"},
		{name: "compressed", msg: `{"body":"e30=","content-type":"application/json","headers":{"compression":"application/x-gzip"},"properties":{"body_encoding":"base64"}}`, wantErr: "compressed"},
		{name: "odd body encoding", msg: `{"body":"e30=","content-type":"application/json","properties":{"body_encoding":"rot13"}}`, wantErr: "body encoding"},
		{name: "body not an object", msg: kombuMessage(t, []int{1}, nil), wantErr: "event body"},
		{name: "no hostname", msg: kombuMessage(t, map[string]any{"type": "worker-heartbeat", "freq": 2}, nil), wantErr: "without type or hostname"},
		{name: "empty hostname", msg: kombuMessage(t, workerEvent("worker-heartbeat", "", 2, 0, 0, ts), nil), wantErr: "empty hostname"},
		{name: "control character in hostname", msg: kombuMessage(t, workerEvent("worker-heartbeat", "w1\n@vm", 2, 0, 0, ts), nil), wantErr: "control character"},
		{name: "long hostname", msg: kombuMessage(t, workerEvent("worker-heartbeat", strings.Repeat("h", 300), 2, 0, 0, ts), nil), wantErr: "exceeds"},
		{name: "no freq", msg: kombuMessage(t, map[string]any{"type": "worker-heartbeat", "hostname": "w1@vm"}, nil), wantErr: "without freq"},
		{name: "zero freq", msg: kombuMessage(t, workerEvent("worker-heartbeat", "w1@vm", 0, 0, 0, ts), nil), wantErr: "freq"},
		{name: "huge freq", msg: kombuMessage(t, workerEvent("worker-heartbeat", "w1@vm", 1e300, 0, 0, ts), nil), wantErr: "freq"},
		{name: "negative active", msg: kombuMessage(t, workerEvent("worker-heartbeat", "w1@vm", 2, -1, 0, ts), nil), wantErr: "negative"},
		{name: "fractional count", msg: kombuMessage(t, map[string]any{"type": "worker-heartbeat", "hostname": "w1@vm", "freq": 2, "active": 1.5}, nil), wantErr: "event body"},
		{name: "timestamp out of range", msg: kombuMessage(t, workerEvent("worker-heartbeat", "w1@vm", 2, 0, 0, 1e20), nil), wantErr: "timestamp"},
		{name: "too large", msg: `{"body":"` + strings.Repeat("a", maxCeleryMessage) + `"}`, wantErr: "exceeds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeCeleryEvent([]byte(tc.msg))
			if tc.wantErr != "" {
				require.ErrorIs(t, err, detail.ErrMalformed, "decodeCeleryEvent(%.80q)", tc.msg)
				require.ErrorContains(t, err, tc.wantErr, "decodeCeleryEvent(%.80q)", tc.msg)
				return
			}
			require.NoError(t, err, "decodeCeleryEvent(%.80q)", tc.msg)
			assert.WithinDuration(t, tc.want.Timestamp, got.Timestamp, time.Microsecond, "Timestamp")
			got.Timestamp, tc.want.Timestamp = time.Time{}, time.Time{}
			assert.Equal(t, tc.want, got, "decodeCeleryEvent(%.80q)", tc.msg)
		})
	}
}

func TestDecodeCeleryReply(t *testing.T) {
	const ticket = "d3a42f23-c61b-4f5a-bc28-802046afb142"
	tests := []struct {
		name    string
		msg     string
		want    []string
		wantErr error
	}{
		{name: "pong", msg: kombuMessage(t, map[string]any{"w1@vm": map[string]string{"ok": "pong"}}, map[string]any{"ticket": ticket, "clock": 3}), want: []string{"w1@vm"}},
		{name: "error reply still answers", msg: kombuMessage(t, map[string]any{"w1@vm": map[string]string{"error": "x"}}, map[string]any{"ticket": ticket}), want: []string{"w1@vm"}},
		{name: "other ticket", msg: kombuMessage(t, map[string]any{"w1@vm": map[string]string{"ok": "pong"}}, map[string]any{"ticket": "other"}), wantErr: errStrayReply},
		{name: "no ticket", msg: kombuMessage(t, map[string]any{"w1@vm": map[string]string{"ok": "pong"}}, nil), wantErr: errStrayReply},
		{name: "ticket not a string", msg: kombuMessage(t, map[string]any{"w1@vm": map[string]string{"ok": "pong"}}, map[string]any{"ticket": 7}), wantErr: detail.ErrMalformed},
		{name: "empty", msg: kombuMessage(t, map[string]any{}, map[string]any{"ticket": ticket}), wantErr: detail.ErrMalformed},
		{name: "not an object", msg: kombuMessage(t, "pong", map[string]any{"ticket": ticket}), wantErr: detail.ErrMalformed},
		{name: "value not an object", msg: kombuMessage(t, map[string]any{"w1@vm": "pong"}, map[string]any{"ticket": ticket}), wantErr: detail.ErrMalformed},
		{name: "bad hostname", msg: kombuMessage(t, map[string]any{"": map[string]string{}}, map[string]any{"ticket": ticket}), wantErr: detail.ErrMalformed},
		{name: "garbage", msg: "\x00\x01", wantErr: detail.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeCeleryReply([]byte(tc.msg), ticket)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr, "decodeCeleryReply(%.80q)", tc.msg)
				return
			}
			require.NoError(t, err, "decodeCeleryReply(%.80q)", tc.msg)
			require.Equal(t, strings.Join(tc.want, ","), strings.Join(got, ","), "decodeCeleryReply(%.80q)", tc.msg)
		})
	}
}

// TestEncodeCeleryPing checks the ping against what kombu's mailbox
// publishes (as seen on a real broker): the envelope decodes, and the body
// names the method, the ticket and where to reply.
func TestEncodeCeleryPing(t *testing.T) {
	expires := time.Unix(1795439421, 725568000)
	msg, err := encodeCeleryPing("celery.pidbox", "reply.celery.pidbox", "oid-1", "ticket-1", "tag-1", expires)
	require.NoError(t, err)
	body, h, err := decodeKombuEnvelope(msg)
	require.NoError(t, err, "decodeKombuEnvelope(ping)")
	assert.Empty(t, h.Ticket, "ping carries a header ticket; kombu puts it in the body")
	var got map[string]any
	require.NoError(t, json.Unmarshal(body, &got))
	want := map[string]any{
		"method": "ping", "arguments": map[string]any{}, "destination": nil, "pattern": nil, "matcher": nil,
		"ticket": "ticket-1", "reply_to": map[string]any{"exchange": "reply.celery.pidbox", "routing_key": "oid-1"},
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	assert.Equal(t, string(wantJSON), string(gotJSON), "ping body")
	var env map[string]any
	_ = json.Unmarshal(msg, &env)
	assert.Equal(t, 1795439421.725568, env["headers"].(map[string]any)["expires"].(float64), "expires header")
	props := env["properties"].(map[string]any)
	assert.Equal(t, "tag-1", props["delivery_tag"], "properties = %v", props)
	assert.Equal(t, "base64", props["body_encoding"], "properties = %v", props)
}
