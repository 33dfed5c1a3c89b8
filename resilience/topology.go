package resilience

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// EnvClusterURL names a Redis Cluster for [ConfigFromEnv], in go-redis's
// ParseClusterURL form (see [ParseClusterURL]).
const EnvClusterURL = "REDIS_CLUSTER_URL"

// Topology says how the Redis of a [Config] is deployed.
type Topology int

// The topologies a [Config] describes. The zero value is
// TopologyStandalone.
const (
	// TopologyStandalone is one server at Config.Addr.
	TopologyStandalone Topology = iota
	// TopologySentinel is a master found through Redis Sentinel:
	// Config.Addrs are the sentinels and Config.MasterName the master's
	// name; the master changes on failover.
	TopologySentinel
	// TopologyCluster is a Redis Cluster: Config.Addrs are seed nodes,
	// from which the client learns every node and slot.
	TopologyCluster
)

// String returns "standalone", "sentinel" or "cluster".
func (t Topology) String() string {
	switch t {
	case TopologyStandalone:
		return "standalone"
	case TopologySentinel:
		return "sentinel"
	case TopologyCluster:
		return "cluster"
	}
	return "unknown"
}

// Query parameters of the Sentinel and Cluster URL forms.
const (
	paramMasterName       = "master_name"
	paramAddr             = "addr"
	paramPassword         = "password"
	paramUsername         = "username"
	paramDB               = "db"
	paramSentinelPassword = "sentinel_password"
	paramSentinelUsername = "sentinel_username"
)

// ParseClusterURL parses a Redis Cluster URL in go-redis's
// ParseClusterURL form: the host and every addr= parameter are seed nodes,
// and the user-info authenticates to every node.
//
//	redis://[user[:password]@]host[:port][?addr=host2:port2&addr=...]
//	rediss://... (TLS)
//
// A cluster has database 0 only: a path other than "/" or "/0" is an
// error, and so is any other query parameter (the client's timeouts and
// retries are set by [NewRedis], not by the URL). Errors are
// [*ConfigError] values that never show a password.
func ParseClusterURL(raw string) (Config, error) {
	return parseTopologyURL(raw, TopologyCluster)
}

// credential returns the field of c that the Sentinel form's credential
// parameter k sets, or nil when k is none.
func (c *Config) credential(k string) *string {
	switch k {
	case paramPassword:
		return &c.Password
	case paramUsername:
		return &c.Username
	case paramSentinelPassword:
		return &c.SentinelPassword
	case paramSentinelUsername:
		return &c.SentinelUsername
	}
	return nil
}

// userinfoCredential names, for the credential parameters that the
// user-info of a Sentinel URL may set too, what they set. A read-only
// table.
var userinfoCredential = map[string]string{
	paramSentinelPassword: "sentinel password",
	paramSentinelUsername: "sentinel user",
}

// hasMasterName reports whether raw's query holds a master_name
// parameter: the mark of a Sentinel URL.
func hasMasterName(raw string) bool {
	_, q, ok := strings.Cut(raw, "?")
	if !ok {
		return false
	}
	q, _, _ = strings.Cut(q, "#")
	for _, kv := range strings.Split(q, "&") {
		if k, _, _ := strings.Cut(kv, "="); k == paramMasterName {
			return true
		}
	}
	return false
}

// parseTopologyURL parses the Sentinel form (go-redis's ParseFailoverURL:
// the user-info and sentinel_username/sentinel_password are the sentinels'
// credentials, username= and password= the data nodes') or the Cluster
// form.
func parseTopologyURL(raw string, topo Topology) (Config, error) {
	fail := func(err error) (Config, error) {
		return Config{}, &ConfigError{Var: "url", Value: redactURL(redactQuery(raw)), Err: errors.New(scrub(err.Error(), raw))}
	}
	u, err := parseRaw(raw)
	if err != nil {
		return fail(err)
	}
	cfg := Config{Network: "tcp", Topology: topo}
	switch u.Scheme {
	case "redis", "rediss":
		cfg.TLS = u.Scheme == "rediss"
	case "":
		return fail(errors.New("missing scheme: want redis:// or rediss://"))
	default:
		return fail(fmt.Errorf("unsupported scheme %q: want redis:// or rediss://", u.Scheme))
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fail(errors.New("unexpected '#' fragment"))
	}
	var user, pass string
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
	}
	if topo == TopologySentinel {
		cfg.SentinelUsername, cfg.SentinelPassword = user, pass
	} else {
		cfg.Username, cfg.Password = user, pass
	}
	first, err := hostPort(u.Hostname(), u.Port(), u.Host)
	if err != nil {
		return fail(err)
	}
	cfg.Addrs = []string{first}
	if p := strings.Trim(u.EscapedPath(), "/"); p != "" {
		n, err := parseDB(p)
		if err != nil {
			return fail(fmt.Errorf("database in path: %w", err))
		}
		if topo == TopologyCluster && n != 0 {
			return fail(errors.New("a cluster has database 0 only"))
		}
		cfg.DB = n
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(u.RawQuery, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if k != paramAddr && seen[k] {
			return fail(fmt.Errorf("parameter %q given twice", k))
		}
		seen[k] = true
		dv, derr := url.QueryUnescape(v)
		switch {
		case k == paramAddr:
			h, p, err := net.SplitHostPort(dv)
			if err != nil || h == "" {
				return fail(fmt.Errorf("addr parameter %q: want host:port", v))
			}
			addr, err := hostPort(strings.Trim(h, "[]"), p, dv)
			if err != nil {
				return fail(fmt.Errorf("addr parameter: %w", err))
			}
			cfg.Addrs = append(cfg.Addrs, addr)
		case topo == TopologySentinel && k == paramMasterName:
			if derr != nil || strings.TrimSpace(dv) == "" {
				return fail(errors.New("empty master_name"))
			}
			cfg.MasterName = dv
		case topo == TopologySentinel && cfg.credential(k) != nil:
			if derr != nil {
				return fail(fmt.Errorf("%s parameter: malformed escape", k))
			}
			dst, what := cfg.credential(k), userinfoCredential[k]
			if what != "" && *dst != "" {
				return fail(fmt.Errorf("%s given twice: in the user-info and as %s", what, k))
			}
			*dst = dv
		case topo == TopologySentinel && k == paramDB:
			n, err := parseDB(v)
			if err != nil {
				return fail(fmt.Errorf("db parameter: %w", err))
			}
			cfg.DB = n
		default:
			return fail(fmt.Errorf("unsupported query parameter %q", k))
		}
	}
	if topo == TopologySentinel && cfg.MasterName == "" {
		return fail(errors.New("empty master_name"))
	}
	cfg.Addr = cfg.Addrs[0]
	return cfg, nil
}

// topologyString is [Config.String] for Sentinel and Cluster: the URL in
// the form it was parsed from, with every password as ***.
func (c Config) topologyString() string {
	scheme := "redis"
	if c.TLS {
		scheme = "rediss"
	}
	addrs := c.Addrs
	if len(addrs) == 0 && c.Addr != "" {
		addrs = []string{c.Addr}
	}
	first := ""
	if len(addrs) > 0 {
		first = addrs[0]
	}
	user, pass := c.Username, c.Password
	if c.Topology == TopologySentinel {
		user, pass = c.SentinelUsername, c.SentinelPassword
	}
	var b strings.Builder
	b.WriteString(scheme + "://")
	if user != "" || pass != "" {
		b.WriteString(url.User(user).String())
		if pass != "" {
			b.WriteString(":" + redacted)
		}
		b.WriteByte('@')
	}
	b.WriteString(first)
	var q []string
	if c.Topology == TopologySentinel {
		b.WriteString("/" + strconv.Itoa(c.DB))
		q = append(q, paramMasterName+"="+url.QueryEscape(c.MasterName))
	}
	for _, a := range addrs[min(1, len(addrs)):] {
		q = append(q, paramAddr+"="+a)
	}
	if c.Topology == TopologySentinel {
		if c.Username != "" {
			q = append(q, paramUsername+"="+url.QueryEscape(c.Username))
		}
		if c.Password != "" {
			q = append(q, paramPassword+"="+redacted)
		}
	}
	if len(q) > 0 {
		b.WriteString("?" + strings.Join(q, "&"))
	}
	return b.String()
}
