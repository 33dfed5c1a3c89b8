package resilience

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// ConfigFromEnv reads the Redis configuration from the process environment.
// REDIS_CLUSTER_URL names a Redis Cluster (see [ParseClusterURL]); REDIS_URL
// a server (redis://, rediss:// or unix://) or, with master_name=, a
// Sentinel deployment (see [ParseURL]); setting both is an error. For
// Sentinel and Cluster, REDIS_PASSWORD, when set, is the data nodes'
// password (a URL naming another one is an error). Otherwise
// REDISHOST and REDISPORT are required, with REDISUSER, REDIS_PASSWORD and
// REDIS_DB optional.
//
// When nothing is set it returns an error that [errors.Is] matches to
// [ErrNotConfigured], and only then. When only part of the host/port pair
// is set, or a value is malformed, it returns a [*ConfigError] naming the
// variable, which does not match [ErrNotConfigured].
func ConfigFromEnv() (Config, error) {
	return configFrom(os.LookupEnv)
}

// configFrom is ConfigFromEnv with the lookup injected, for tests.
func configFrom(lookup func(string) (string, bool)) (Config, error) {
	get := func(k string) string {
		v, _ := lookup(k)
		return strings.TrimSpace(v)
	}
	if raw := get(EnvClusterURL); raw != "" {
		if get(EnvURL) != "" {
			return Config{}, &ConfigError{Var: EnvClusterURL, Err: fmt.Errorf("set together with %s: set one of them", EnvURL)}
		}
		return fromURL(EnvClusterURL, raw, ParseClusterURL, lookup)
	}
	if raw := get(EnvURL); raw != "" {
		return fromURL(EnvURL, raw, ParseURL, lookup)
	}
	host, port := get(EnvHost), get(EnvPort)
	switch {
	case host == "" && port == "":
		return Config{}, ErrNotConfigured
	case host == "":
		return Config{}, &ConfigError{Var: EnvHost, Err: fmt.Errorf("not set (%s is)", EnvPort)}
	case port == "":
		return Config{}, &ConfigError{Var: EnvPort, Err: fmt.Errorf("not set (%s is)", EnvHost)}
	}
	if strings.ContainsAny(host, "/@ ") || strings.Contains(host, "://") {
		return Config{}, &ConfigError{Var: EnvHost, Value: redactURL(host), Err: errors.New("want a host name or IP address, not a URL (use REDIS_URL for URLs)")}
	}
	bare := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if bare == "" {
		return Config{}, &ConfigError{Var: EnvHost, Value: host, Err: errors.New("empty host")}
	}
	if strings.Contains(bare, ":") {
		// Only an IPv6 address may hold a colon; "host:6379" puts the port
		// in the wrong variable.
		if _, err := netip.ParseAddr(bare); err != nil {
			return Config{}, &ConfigError{Var: EnvHost, Value: host, Err: fmt.Errorf("want a host name or IP address without a port (put the port in %s)", EnvPort)}
		}
	}
	port, err := checkPort(port)
	if err != nil {
		return Config{}, &ConfigError{Var: EnvPort, Value: get(EnvPort), Err: err}
	}
	cfg := Config{
		Network:  "tcp",
		Addr:     net.JoinHostPort(bare, port),
		Username: get(EnvUser),
		Password: func() string { v, _ := lookup(EnvPassword); return v }(),
	}
	if db := get(EnvDB); db != "" {
		n, err := parseDB(db)
		if err != nil {
			return Config{}, &ConfigError{Var: EnvDB, Value: db, Err: err}
		}
		cfg.DB = n
	}
	return cfg, nil
}

// fromURL parses the URL in the variable name with parse; a Sentinel or
// Cluster URL takes REDIS_PASSWORD as its data password.
func fromURL(name, raw string, parse func(string) (Config, error), lookup func(string) (string, bool)) (Config, error) {
	cfg, err := parse(raw)
	if err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.Var = name
		}
		return Config{}, err
	}
	if cfg.Topology != TopologyStandalone {
		return topologyFromEnv(cfg, name, lookup)
	}
	return cfg, nil
}

// topologyFromEnv applies what the environment adds to a Sentinel or
// Cluster configuration: REDIS_PASSWORD, when set, is the data nodes'
// password. A URL that names a different one is an error.
func topologyFromEnv(cfg Config, urlVar string, lookup func(string) (string, bool)) (Config, error) {
	pw, ok := lookup(EnvPassword)
	if !ok || pw == "" {
		return cfg, nil
	}
	if cfg.Password != "" && cfg.Password != pw {
		return Config{}, &ConfigError{Var: EnvPassword, Err: fmt.Errorf("differs from the data password %s gives", urlVar)}
	}
	cfg.Password = pw
	return cfg, nil
}
