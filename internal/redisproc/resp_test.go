//go:build unix

package redisproc

import (
	"bufio"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadReply(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string // a substring of the error; empty for none
		wantNil bool   // the error is ErrNil
	}{
		{name: "simple string", in: "+PONG\r\n", want: "PONG"},
		{name: "integer", in: ":42\r\n", want: "42"},
		{name: "bulk string", in: "$5\r\nhe\r\nl\r\n", want: "he\r\nl"},
		{name: "empty bulk string", in: "$0\r\n\r\n", want: ""},
		{name: "nil bulk string", in: "$-1\r\n", wantNil: true},
		{name: "nil array", in: "*-1\r\n", wantNil: true},
		{name: "error", in: "-ERR unknown\r\n", wantErr: "ERR unknown"},
		{name: "array", in: "*2\r\n$3\r\nfoo\r\n:7\r\n", want: "foo\n7"},
		{name: "empty array", in: "*0\r\n", want: ""},
		{name: "array with nil", in: "*3\r\n+a\r\n$-1\r\n+b\r\n", want: "a\n\nb"},
		{name: "nested array", in: "*2\r\n*2\r\n+a\r\n+b\r\n+c\r\n", want: "a\nb\nc"},
		{name: "error in array", in: "*2\r\n+a\r\n-WRONGTYPE no\r\n", wantErr: "element 2 of 2: WRONGTYPE no"},
		{name: "short bulk", in: "$10\r\nabc\r\n", wantErr: "EOF"},
		{name: "bulk without CRLF", in: "$3\r\nabcde", wantErr: "no CRLF"},
		{name: "bad length", in: "$x\r\n", wantErr: "length"},
		{name: "negative length", in: "*-2\r\n", wantErr: "negative"},
		{name: "huge length", in: "$9999999999\r\n", wantErr: "above"},
		{name: "short array", in: "*2\r\n+a\r\n", wantErr: "EOF"},
		{name: "too deep", in: strings.Repeat("*1\r\n", maxDepth+1) + "+a\r\n", wantErr: "nested deeper"},
		{name: "empty line", in: "\r\n", wantErr: "empty reply"},
		{name: "unknown type", in: "%1\r\n", wantErr: "unexpected reply"},
		{name: "nothing", in: "", wantErr: "EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadReply(bufio.NewReader(strings.NewReader(tc.in)))
			switch {
			case tc.wantNil:
				require.ErrorIs(t, err, ErrNil, "ReadReply(%q) = %q", tc.in, got)
			case tc.wantErr != "":
				require.ErrorContains(t, err, tc.wantErr, "ReadReply(%q) = %q", tc.in, got)
			default:
				assert.NoError(t, err, "ReadReply(%q) = %q", tc.in, got)
				assert.Equal(t, tc.want, got, "ReadReply(%q)", tc.in)
			}
		})
	}
}

func TestAppendCommand(t *testing.T) {
	got := string(appendCommand(nil, []string{"SET", "k", "a\r\nb", ""}))
	want := "*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n$0\r\n\r\n"
	assert.Equal(t, want, got, "appendCommand(SET k a\\r\\nb \"\")")
}

// FuzzReadReply checks that no input makes ReadReply panic, and that a
// command encoded by appendCommand reads back as its arguments, without
// ReadReply reading past it.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"+OK\r\n", "$3\r\nabc\r\n", "*2\r\n$-1\r\n:1\r\n", "-ERR x\r\n", "*1\r\n*1\r\n+a\r\n"} {
		f.Add([]byte(s), "a", "b\r\n")
	}
	f.Fuzz(func(t *testing.T, in []byte, a, b string) {
		_, _ = ReadReply(bufio.NewReader(strings.NewReader(string(in))))

		enc := appendCommand(nil, []string{a, b})
		r := bufio.NewReader(strings.NewReader(string(enc) + "+next\r\n"))
		got, err := ReadReply(r)
		require.NoError(t, err, "ReadReply(appendCommand(%q, %q)) = %q", a, b, got)
		require.Equal(t, a+"\n"+b, got, "ReadReply(appendCommand(%q, %q))", a, b)
		next, err := ReadReply(r)
		require.NoError(t, err, "after the command, ReadReply = %q; want the next reply", next)
		require.Equal(t, "next", next, "after the command, ReadReply; want the next reply")
	})
}
