package middleware_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/steadfast-go/steadfast/middleware"
)

func TestNewCacheOptions(t *testing.T) {
	tests := []struct {
		name  string
		store middleware.Store
		opts  middleware.CacheOptions
		field string
	}{
		{name: "nil store", opts: middleware.CacheOptions{}, field: "store"},
		{name: "negative queue", store: &fakeStore{}, opts: middleware.CacheOptions{QueueSize: -1}, field: "QueueSize"},
		{name: "negative workers", store: &fakeStore{}, opts: middleware.CacheOptions{Workers: -1}, field: "Workers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := middleware.NewCache(tc.store, tc.opts)
			assert.Nil(t, c)
			assert.ErrorIs(t, err, middleware.ErrInvalidOption)
			assert.ErrorContains(t, err, tc.field)
		})
	}
}
