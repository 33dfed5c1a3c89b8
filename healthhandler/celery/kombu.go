package celery

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"strings"
	"time"

	"github.com/steadfast-go/steadfast/healthhandler/internal/detail"
)

// This file reads and writes the messages Celery exchanges over a Redis
// broker. kombu's Redis transport wraps every message in a JSON envelope:
//
//	{"body": "<base64>", "content-type": "application/json",
//	 "content-encoding": "utf-8", "headers": {...},
//	 "properties": {"body_encoding": "base64", "delivery_info": {...}, ...}}
//
// and the body, once base64-decoded, is the JSON the application sent: a
// worker event (hostname, type, freq, active, processed, timestamp, ...) or
// a control reply ({"<hostname>": {"ok": "pong"}}). Everything here sees
// bytes anyone with access to the broker can publish, so every decoder
// returns an error wrapping detail.ErrMalformed rather than trusting its
// input.

// Limits on what a decoder accepts.
const (
	// maxCeleryMessage bounds an envelope: a heartbeat is some 700 bytes
	// and a ping reply a few hundred.
	maxCeleryMessage = 64 << 10
	// maxCeleryFreq bounds a worker's heartbeat interval: anything longer
	// is not a heartbeat a health check can use.
	maxCeleryFreq = time.Hour
)

// Celery worker event types, as the "type" field spells them.
const (
	celeryWorkerOnline    = "worker-online"
	celeryWorkerHeartbeat = "worker-heartbeat"
	celeryWorkerOffline   = "worker-offline"
)

// kombuEnvelope is the part of kombu's envelope the decoders read.
type kombuEnvelope struct {
	Body            *string `json:"body"`
	ContentType     string  `json:"content-type"`
	ContentEncoding string  `json:"content-encoding"`
	Headers         struct {
		Ticket      *string `json:"ticket"`
		Compression *string `json:"compression"`
	} `json:"headers"`
	Properties struct {
		BodyEncoding string `json:"body_encoding"`
	} `json:"properties"`
}

// kombuHeaders are the envelope headers a decoder passes on.
type kombuHeaders struct {
	// Ticket is the control call a reply answers; empty when absent.
	Ticket string
}

// decodeKombuEnvelope returns the decoded body of one kombu message and
// the headers the decoders need. It accepts JSON bodies only (Celery's
// default event and control serializer), base64-encoded or not, and no
// compression.
func decodeKombuEnvelope(data []byte) ([]byte, kombuHeaders, error) {
	var h kombuHeaders
	if len(data) > maxCeleryMessage {
		return nil, h, detail.Malformed("message of %d bytes exceeds %d", len(data), maxCeleryMessage)
	}
	var env kombuEnvelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, h, detail.Malformed("envelope is not kombu JSON")
	}
	if env.Body == nil {
		return nil, h, detail.Malformed("envelope has no body")
	}
	if env.Headers.Compression != nil && *env.Headers.Compression != "" {
		return nil, h, detail.Malformed("compressed body not supported")
	}
	if mt, _, err := mime.ParseMediaType(env.ContentType); err != nil || mt != "application/json" {
		return nil, h, detail.Malformed("content type %q is not application/json", detail.Clip(env.ContentType))
	}
	switch strings.ToLower(env.ContentEncoding) {
	case "", "utf-8", "utf8":
	default:
		return nil, h, detail.Malformed("content encoding %q not supported", detail.Clip(env.ContentEncoding))
	}
	var body []byte
	switch env.Properties.BodyEncoding {
	case "base64":
		b, err := base64.StdEncoding.DecodeString(*env.Body)
		if err != nil {
			return nil, h, detail.Malformed("body is not base64")
		}
		body = b
	case "":
		body = []byte(*env.Body)
	default:
		return nil, h, detail.Malformed("body encoding %q not supported", detail.Clip(env.Properties.BodyEncoding))
	}
	if env.Headers.Ticket != nil {
		h.Ticket = *env.Headers.Ticket
	}
	return body, h, nil
}

// celeryEvent is one worker event, checked.
type celeryEvent struct {
	Type              string
	Hostname          string
	Freq              time.Duration // zero for worker-offline
	Active, Processed int64
	// Timestamp is the worker's own clock when it sent the event; zero
	// when the event had none.
	Timestamp time.Time
}

// celeryEventBody is the JSON of a worker event. Pointers tell a missing
// field from a zero one.
type celeryEventBody struct {
	Type      *string  `json:"type"`
	Hostname  *string  `json:"hostname"`
	Freq      *float64 `json:"freq"`
	Active    *int64   `json:"active"`
	Processed *int64   `json:"processed"`
	Timestamp *float64 `json:"timestamp"`
}

// decodeCeleryEvent decodes one message published on Celery's event
// exchange. Events of types other than worker-online, worker-heartbeat and
// worker-offline decode without error; the caller ignores them.
func decodeCeleryEvent(data []byte) (celeryEvent, error) {
	var ev celeryEvent
	body, _, err := decodeKombuEnvelope(data)
	if err != nil {
		return ev, err
	}
	var b celeryEventBody
	if err := json.Unmarshal(body, &b); err != nil {
		return ev, detail.Malformed("event body is not a JSON object of the expected fields")
	}
	if b.Type == nil || b.Hostname == nil {
		return ev, detail.Malformed("event without type or hostname")
	}
	ev.Type = *b.Type
	if err := detail.CheckHostname(*b.Hostname); err != nil {
		return ev, err
	}
	ev.Hostname = *b.Hostname
	if ev.Type != celeryWorkerOnline && ev.Type != celeryWorkerHeartbeat {
		return ev, nil // worker-offline needs no more; other types are ignored
	}
	if b.Freq == nil {
		return ev, detail.Malformed("%s without freq", ev.Type)
	}
	f := *b.Freq
	if math.IsNaN(f) || f <= 0 || f > maxCeleryFreq.Seconds() {
		return ev, detail.Malformed("freq %v out of range (0, %v]", f, maxCeleryFreq.Seconds())
	}
	ev.Freq = time.Duration(f * float64(time.Second))
	if b.Active != nil {
		ev.Active = *b.Active
	}
	if b.Processed != nil {
		ev.Processed = *b.Processed
	}
	if ev.Active < 0 || ev.Processed < 0 {
		return ev, detail.Malformed("negative active or processed count")
	}
	if b.Timestamp != nil {
		ts := *b.Timestamp
		// Up to the year 9999: beyond it time.Time arithmetic overflows.
		if math.IsNaN(ts) || ts < 0 || ts > 253402300799 {
			return ev, detail.Malformed("timestamp %v out of range", ts)
		}
		sec, frac := math.Modf(ts)
		ev.Timestamp = time.Unix(int64(sec), int64(frac*1e9))
	}
	return ev, nil
}

// errStrayReply marks a well-formed reply to another call. It is not
// malformed: another client's reply may share a reply queue in principle.
var errStrayReply = errors.New("reply to another call")

// decodeCeleryReply decodes one reply to a control call, such as the
// {"w1@host": {"ok": "pong"}} a worker answers a ping with, and returns
// the node names that answered. A reply whose ticket is not ticket gives
// errStrayReply.
func decodeCeleryReply(data []byte, ticket string) ([]string, error) {
	body, h, err := decodeKombuEnvelope(data)
	if err != nil {
		return nil, err
	}
	if h.Ticket != ticket {
		return nil, errStrayReply
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, detail.Malformed("reply body is not a JSON object")
	}
	if len(m) == 0 {
		return nil, detail.Malformed("reply names no worker")
	}
	hosts := make([]string, 0, len(m))
	for host, v := range m {
		if err := detail.CheckHostname(host); err != nil {
			return nil, err
		}
		if v = bytes.TrimSpace(v); len(v) == 0 || v[0] != '{' {
			return nil, detail.Malformed("reply of %q is not an object", host)
		}
		hosts = append(hosts, host)
	}
	return hosts, nil
}

// celeryControl is the body of a control call (kombu's mailbox message).
type celeryControl struct {
	Method      string            `json:"method"`
	Arguments   map[string]any    `json:"arguments"`
	Destination []string          `json:"destination"`
	Pattern     *string           `json:"pattern"`
	Matcher     *string           `json:"matcher"`
	Ticket      string            `json:"ticket"`
	ReplyTo     map[string]string `json:"reply_to"`
}

// celeryOutgoing is the envelope of a message this package publishes.
type celeryOutgoing struct {
	Body            string         `json:"body"`
	ContentEncoding string         `json:"content-encoding"`
	ContentType     string         `json:"content-type"`
	Headers         map[string]any `json:"headers"`
	Properties      map[string]any `json:"properties"`
}

// encodeCeleryPing builds the broadcast ping a Celery client publishes on
// the control exchange: every worker answers {"<hostname>": {"ok":
// "pong"}} on replyExchange with routing key replyKey, and ticket in its
// headers. expires is when the call stops waiting for answers.
func encodeCeleryPing(exchange, replyExchange, replyKey, ticket, tag string, expires time.Time) ([]byte, error) {
	body, err := json.Marshal(celeryControl{
		Method:    "ping",
		Arguments: map[string]any{},
		Ticket:    ticket,
		ReplyTo:   map[string]string{"exchange": replyExchange, "routing_key": replyKey},
	})
	if err != nil {
		return nil, fmt.Errorf("encode ping: %w", err)
	}
	out, err := json.Marshal(celeryOutgoing{
		Body:            base64.StdEncoding.EncodeToString(body),
		ContentEncoding: "utf-8",
		ContentType:     "application/json",
		Headers: map[string]any{
			"clock":   0,
			"expires": float64(expires.UnixNano()) / 1e9,
		},
		Properties: map[string]any{
			"delivery_mode": 2,
			"delivery_info": map[string]string{"exchange": exchange, "routing_key": ""},
			"priority":      0,
			"body_encoding": "base64",
			"delivery_tag":  tag,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("encode ping: %w", err)
	}
	return out, nil
}
