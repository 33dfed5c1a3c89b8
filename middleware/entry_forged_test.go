package middleware

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/resilience"
)

// Entries forged directly in a real Redis, with a valid checksum but
// content the cache would never store (or, for a signing cache, without a
// valid signature), are never served: each is a miss, deleted and counted
// (issue 14 item 8).
func TestCacheForgedEntriesRealRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = raw.Close() })
	rdb, err := resilience.NewRedis(resilience.Config{Addr: srv.Addr()}, resilience.Options{
		Logger: forgedLog, OpTimeout: 5 * time.Second, DialTimeout: 5 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	now := entryNow
	policy := cachepolicy.Policy{TTL: time.Hour}

	type forgery struct {
		name    string
		val     []byte
		signKey []byte // of the cache that reads it
	}
	var forgeries []forgery
	for _, tc := range impossibleEntries() {
		e := *tc.e
		e.life.Fresh = time.Hour
		forgeries = append(forgeries, forgery{name: tc.name, val: appendEntry(nil, &e, "", nil)})
	}
	good := &entry{storedAt: now.Add(-time.Second), life: cachepolicy.Lifetime{Fresh: time.Hour}, status: 200,
		fields: []field{{name: "Content-Type", values: []string{"text/html"}}}, body: []byte("<script>forged</script>")}
	forgeries = append(forgeries,
		forgery{name: "unsigned, for a signing cache", val: appendEntry(nil, good, "", nil), signKey: signKey},
		forgery{name: "signed with another key", signKey: signKey}, // val set per key below
		forgery{name: "signed for another Redis key", signKey: signKey},
	)

	for i, tc := range forgeries {
		t.Run(tc.name, func(t *testing.T) {
			prefix := fmt.Sprintf("t%d:", i)
			c, err := NewCache(rdb, CacheOptions{KeyPrefix: prefix, Logger: forgedLog, Now: func() time.Time { return now },
				SigningKey: tc.signKey})
			require.NoError(t, err)
			defer c.Close()
			o := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Cache-Control", "no-store") // so that the key stays deleted
				io.WriteString(w, "from the handler")
			})
			key := cachepolicy.Key(prefix, httptest.NewRequest("GET", "/x", nil), policy.Normalize())
			val := tc.val
			switch tc.name {
			case "signed with another key":
				val = appendEntry(nil, good, key, otherSign)
			case "signed for another Redis key":
				val = appendEntry(nil, good, key+"x", signKey)
			}
			require.NoError(t, raw.Set(context.Background(), key, val, time.Hour).Err())

			rr := httptest.NewRecorder()
			c.Policy(policy)(o).ServeHTTP(rr, httptest.NewRequest("GET", "/x", nil))
			cs := rr.Header().Get("Cache-Status")
			assert.Equal(t, "from the handler", rr.Body.String(), "Cache-Status %q", cs)
			assert.Equal(t, http.StatusOK, rr.Code)
			assert.Empty(t, rr.Header().Get("Age"), "served from the forged entry")
			assert.Empty(t, rr.Header().Get("Transfer-Encoding"), "framing from the forged entry")
			assert.EqualValues(t, 1, c.Stats().DecodeErrors, "DecodeErrors; Cache-Status %q", cs)
			n, err := raw.Exists(context.Background(), key).Result()
			require.NoError(t, err)
			assert.Zero(t, n, "forged entry not deleted")
		})
	}

	// The same cache, with the right key, serves what it signed itself.
	t.Run("signed by the cache", func(t *testing.T) {
		c, err := NewCache(rdb, CacheOptions{KeyPrefix: "signed:", Logger: forgedLog, Now: func() time.Time { return now },
			SigningKey: signKey})
		require.NoError(t, err)
		defer c.Close()
		key := cachepolicy.Key("signed:", httptest.NewRequest("GET", "/x", nil), policy.Normalize())
		require.NoError(t, raw.Set(context.Background(), key, appendEntry(nil, good, key, signKey), time.Hour).Err())
		rr := httptest.NewRecorder()
		c.Policy(policy)(http.NotFoundHandler()).ServeHTTP(rr, httptest.NewRequest("GET", "/x", nil))
		assert.Equal(t, "<script>forged</script>", rr.Body.String())
		assert.Equal(t, "steadfast; hit; ttl=3599", rr.Header().Get("Cache-Status"))
	})
}

var forgedLog = slog.New(slog.DiscardHandler)

// nopStore finds nothing and stores nothing.
type nopStore struct{}

func (nopStore) Get(context.Context, string) ([]byte, error)              { return nil, fs.ErrNotExist }
func (nopStore) Set(context.Context, string, []byte, time.Duration) error { return nil }
func (nopStore) Del(context.Context, ...string) error                     { return nil }

func TestNewCacheSigningKey(t *testing.T) {
	_, err := NewCache(&nopStore{}, CacheOptions{SigningKey: []byte("short")})
	assert.ErrorIs(t, err, ErrInvalidOption)
	assert.NotContains(t, err.Error(), "short", "the key leaked into the error")
	c, err := NewCache(&nopStore{}, CacheOptions{SigningKey: signKey})
	require.NoError(t, err)
	assert.NoError(t, c.Close())
}
