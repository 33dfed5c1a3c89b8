package cachepolicy_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/steadfast-go/steadfast/cachepolicy"
)

// A policy decides what is stored; Storable applies it to one response,
// and Classify says later how the stored response may be used.
func ExampleStorable() {
	policy := cachepolicy.Policy{
		TTL:          time.Minute,
		StaleIfError: 10 * time.Minute,
		KeyHeaders:   []string{"Accept-Encoding"},
	}
	now := time.Date(2025, 1, 2, 12, 0, 0, 0, time.UTC)
	req := httptest.NewRequest("GET", "/items/42", nil)

	h := http.Header{}
	h.Set("Vary", "Accept-Encoding")
	d := cachepolicy.Storable(req, http.StatusOK, h, policy, now)
	fmt.Println(d.Store, d.Fresh, d.StaleIfError, d.Retention())

	h.Set("Cache-Control", "max-age=5")
	d = cachepolicy.Storable(req, http.StatusOK, h, policy, now)
	fmt.Println(d.Store, d.Fresh)

	for _, age := range []time.Duration{0, 30 * time.Second, 5 * time.Minute, time.Hour} {
		f := cachepolicy.Classify(d.Lifetime, now, now.Add(age), cachepolicy.RequestDirectives{})
		fmt.Printf("after %v: %v\n", age, f)
	}

	h.Set("Set-Cookie", "session=1")
	d = cachepolicy.Storable(req, http.StatusOK, h, policy, now)
	fmt.Println(d.Store, d.Reason)
	// Output:
	// true 1m0s 10m0s 11m0s
	// true 5s
	// after 0s: fresh
	// after 30s: stale-if-error
	// after 5m0s: stale-if-error
	// after 1h0m0s: expired
	// false set-cookie
}

// Rules route requests to policies exactly as an http.ServeMux routes them
// to handlers.
func ExampleNewRules() {
	rules, err := cachepolicy.NewRules(map[string]cachepolicy.Policy{
		"GET /items/{id}": {TTL: time.Minute},
		"/items/":         {TTL: 5 * time.Second},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, target := range []string{"GET /items/42", "HEAD /items/42", "GET /items/42/parts", "GET /users"} {
		var method, path string
		fmt.Sscan(target, &method, &path)
		p, ok := rules.For(httptest.NewRequest(method, path, nil))
		fmt.Printf("%s: %v %v\n", target, ok, p.TTL)
	}

	_, err = cachepolicy.NewRules(map[string]cachepolicy.Policy{"/a/{x}": {}, "/a/{y}": {}})
	fmt.Println(err)
	// Output:
	// GET /items/42: true 1m0s
	// HEAD /items/42: true 1m0s
	// GET /items/42/parts: true 5s
	// GET /users: false 0s
	// rule "/a/{y}": pattern conflict with rule "/a/{x}": /a/{y} matches the same requests as /a/{x}
}

// Requests that differ only in ways that cannot change the response share
// a key; headers the policy does not name never count.
func ExampleKey() {
	policy := cachepolicy.Policy{KeyHeaders: []string{"Accept-Language"}}

	a := httptest.NewRequest("GET", "https://Example.com:443/search?q=go&page=2", nil)
	a.Header.Set("Accept-Language", "de")
	b := httptest.NewRequest("HEAD", "https://example.com/search?page=2&q=go", nil)
	b.Header.Set("Accept-Language", "de")
	b.Header.Set("X-Forwarded-Host", "evil.example")
	c := httptest.NewRequest("GET", "https://example.com/search?page=2&q=go", nil)
	c.Header.Set("Accept-Language", "fr")

	ka := cachepolicy.Key("app:", a, policy)
	fmt.Println(ka)
	fmt.Println(ka == cachepolicy.Key("app:", b, policy))
	fmt.Println(ka == cachepolicy.Key("app:", c, policy))
	// Output:
	// app:46b11a198f7eb3d5e7c7636e841b6fc2
	// true
	// false
}

// CacheStatus renders the Cache-Status field of RFC 9211.
func ExampleCacheStatus() {
	fmt.Println(cachepolicy.CacheStatus{Hit: true, TTL: 42 * time.Second})
	fmt.Println(cachepolicy.CacheStatus{Fwd: cachepolicy.FwdURIMiss, Stored: true})
	fmt.Println(cachepolicy.CacheStatus{Fwd: cachepolicy.FwdBypass, Detail: "redis-unavailable"})
	fmt.Println(cachepolicy.CacheStatus{Fwd: cachepolicy.FwdURIMiss, Detail: "status 500"})
	// Output:
	// steadfast; hit; ttl=42
	// steadfast; fwd=uri-miss; stored
	// steadfast; fwd=bypass; detail=redis-unavailable
	// steadfast; fwd=uri-miss; detail="status 500"
}

// NotModified answers conditional requests from a stored response.
func ExampleNotModified() {
	req := httptest.NewRequest("GET", "/items/42", nil)
	req.Header.Set("If-None-Match", `"v1", W/"v2"`)
	fmt.Println(cachepolicy.NotModified(req, `"v2"`, ""))
	fmt.Println(cachepolicy.NotModified(req, `"v3"`, ""))
	// Output:
	// true
	// false
}
