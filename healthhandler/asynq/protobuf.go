package asynq

import (
	"unicode/utf8"

	"github.com/steadfast-go/steadfast/healthhandler/internal/detail"
)

// serverInfo holds the fields of asynq's ServerInfo message the
// check reads.
type serverInfo struct {
	Host        string // field 1
	PID         int32  // field 2
	ServerID    string // field 3
	Concurrency int32  // field 4
	Status      string // field 7: new, active, stopped or closed
	Active      int32  // field 9: tasks being processed
}

// Protobuf wire types, and the largest field number.
const (
	maxProtoField = 1<<29 - 1

	wireVarint = 0
	wireI64    = 1
	wireLen    = 2
	wireI32    = 5
)

// decodeServerInfo reads asynq's ServerInfo protobuf message. It
// skips the fields it does not need (queues, strict priority, start time)
// and fields unknown to it, so a newer asynq that adds fields still
// decodes; a field of a known number with the wrong wire type, a
// truncated or overlong value, or a string that is not UTF-8 is an error.
func decodeServerInfo(b []byte) (serverInfo, error) {
	var info serverInfo
	for len(b) > 0 {
		key, n := protoVarint(b)
		if n <= 0 {
			return info, detail.Malformed("asynq server state: bad field key")
		}
		b = b[n:]
		field, wire := key>>3, key&7
		if field == 0 || field > maxProtoField {
			return info, detail.Malformed("asynq server state: field number %d", field)
		}
		switch wire {
		case wireVarint:
			v, n := protoVarint(b)
			if n <= 0 {
				return info, detail.Malformed("asynq server state: bad varint in field %d", field)
			}
			b = b[n:]
			switch field {
			case 2:
				info.PID = int32(v) // int32 fields are sign-extended varints
			case 4:
				info.Concurrency = int32(v)
			case 9:
				info.Active = int32(v)
			case 1, 3, 5, 7, 8:
				return info, detail.Malformed("asynq server state: field %d is not a varint", field)
			}
		case wireLen:
			l, n := protoVarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return info, detail.Malformed("asynq server state: bad length in field %d", field)
			}
			v := b[n : n+int(l)]
			b = b[n+int(l):]
			var dst *string
			switch field {
			case 1:
				dst = &info.Host
			case 3:
				dst = &info.ServerID
			case 7:
				dst = &info.Status
			case 2, 4, 6, 9:
				return info, detail.Malformed("asynq server state: field %d is not a number", field)
			}
			if dst != nil {
				if !utf8.Valid(v) {
					return info, detail.Malformed("asynq server state: field %d is not UTF-8", field)
				}
				*dst = string(v)
			}
		case wireI64, wireI32:
			size := 8
			if wire == wireI32 {
				size = 4
			}
			if field <= 9 {
				return info, detail.Malformed("asynq server state: field %d has a fixed-size value", field)
			}
			if len(b) < size {
				return info, detail.Malformed("asynq server state: truncated field %d", field)
			}
			b = b[size:]
		default:
			return info, detail.Malformed("asynq server state: wire type %d", wire)
		}
	}
	if len(info.Host) > detail.MaxHostname {
		return info, detail.Malformed("asynq server state: host of %d bytes", len(info.Host))
	}
	if info.Concurrency < 0 || info.Active < 0 {
		return info, detail.Malformed("asynq server state: negative concurrency or active count")
	}
	return info, nil
}

// protoVarint reads a base-128 varint. n is the bytes read, or 0 when b
// ends first, or -1 when the varint is longer than 10 bytes or overflows.
func protoVarint(b []byte) (v uint64, n int) {
	for i := 0; i < len(b); i++ {
		if i == 10 {
			return 0, -1
		}
		c := b[i]
		if i == 9 && c > 1 {
			return 0, -1
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}
