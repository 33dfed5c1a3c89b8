package resilience

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
)

// Environment variables read by [ConfigFromEnv].
const (
	EnvURL      = "REDIS_URL"
	EnvHost     = "REDISHOST"
	EnvPort     = "REDISPORT"
	EnvUser     = "REDISUSER"
	EnvPassword = "REDIS_PASSWORD"
	EnvDB       = "REDIS_DB"
)

// DefaultPort is the port used when a redis:// URL names none.
const DefaultPort = "6379"

// redacted replaces a password wherever a configuration is shown.
const redacted = "***"

// ErrNotConfigured reports that the environment names no Redis server:
// neither REDIS_URL nor REDISHOST and REDISPORT are set. A program that can
// run without Redis (an embedded server, or no cache) may test for it with
// [errors.Is].
var ErrNotConfigured = errors.New("redis is not configured: set REDIS_URL, or REDISHOST and REDISPORT")

// Config says how to reach one Redis server. Its zero value is not usable:
// build one with [ConfigFromEnv] or [ParseURL], or fill Addr. Config is a
// plain value, safe to copy; its String and LogValue never show the password.
type Config struct {
	// Network is "tcp" or "unix". Empty means "tcp".
	Network string
	// Addr is host:port for tcp, or the socket path for unix.
	Addr string
	// Username is the ACL user name. Empty means the default user.
	Username string
	// Password authenticates the connection. Empty means no AUTH.
	Password string
	// DB is the database number selected after connecting.
	DB int
	// TLS says whether to connect with TLS (rediss://).
	TLS bool

	// Topology is standalone (the zero value), Sentinel or Cluster.
	Topology Topology
	// Addrs are, for Sentinel, the sentinels' addresses and, for Cluster,
	// the seed nodes' (host:port each); Addr is the first of them.
	// Standalone ignores it.
	Addrs []string
	// MasterName is the name Sentinel knows the master by (Sentinel only).
	MasterName string
	// SentinelUsername and SentinelPassword authenticate to the sentinels
	// (Sentinel only); Username and Password are the data nodes'.
	SentinelUsername, SentinelPassword string
}

// ConfigError reports a malformed setting. Value is already redacted: it
// never holds a password.
type ConfigError struct {
	// Var is the environment variable (or "url" for [ParseURL]) at fault.
	Var string
	// Value is the offending value, with any password replaced by ***.
	Value string
	// Err says what is wrong with it.
	Err error
}

// Error names the variable, shows the redacted value and says what is wrong.
func (e *ConfigError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %v", e.Var, e.Err)
	}
	return fmt.Sprintf("%s=%q: %v", e.Var, e.Value, e.Err)
}

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

// String returns the configuration as a URL with the password replaced by
// ***, in the form redis://user:***@host:port/db. A user name without a
// password is hidden too (redis://***@host:port/db): providers that give
// URLs of the form redis://TOKEN@host put a secret there.
func (c Config) String() string {
	if c.Topology != TopologyStandalone {
		return c.topologyString()
	}
	scheme := "redis"
	switch {
	case c.Network == "unix":
		scheme = "unix"
	case c.TLS:
		scheme = "rediss"
	}
	u := url.URL{Scheme: scheme}
	if c.Network == "unix" {
		u.Path = c.Addr
		if c.DB != 0 {
			u.RawQuery = "db=" + strconv.Itoa(c.DB)
		}
	} else {
		u.Host = c.Addr
		u.Path = "/" + strconv.Itoa(c.DB)
	}
	s := u.String()
	if c.Username == "" && c.Password == "" {
		return s
	}
	// url.Userinfo would escape the stars; write the user-info by hand,
	// with the user name escaped as url.User does.
	ui := url.User(c.Username).String()
	switch {
	case c.Password != "":
		ui += ":" + redacted
	case c.Username != "":
		// A lone user-info is where some providers put a token
		// (redis://TOKEN@host): it is hidden like a password.
		ui = redacted
	}
	prefix := scheme + "://"
	return prefix + ui + "@" + strings.TrimPrefix(s, prefix)
}

// GoString keeps %#v from printing the password: it shows the fields with
// Password as "***" when one is set, and Username as "***" when it stands
// alone (see [Config.String]).
func (c Config) GoString() string {
	user, pw := c.Username, ""
	switch {
	case c.Password != "":
		pw = redacted
	case user != "":
		user = redacted // a lone user name may be a token, as in String
	}
	if c.Topology != TopologyStandalone {
		spw := ""
		if c.SentinelPassword != "" {
			spw = redacted
		}
		return fmt.Sprintf("resilience.Config{Topology:%s, Addrs:%q, MasterName:%q, SentinelUsername:%q, SentinelPassword:%q, Username:%q, Password:%q, DB:%d, TLS:%t}",
			c.Topology, c.Addrs, c.MasterName, c.SentinelUsername, spw, c.Username, pw, c.DB, c.TLS)
	}
	return fmt.Sprintf("resilience.Config{Network:%q, Addr:%q, Username:%q, Password:%q, DB:%d, TLS:%t}",
		c.Network, c.Addr, user, pw, c.DB, c.TLS)
}

// LogValue makes slog print the redacted form of [Config.String].
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }
