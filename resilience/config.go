package resilience

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
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

// ConfigFromEnv reads the Redis configuration from the process environment.
// REDIS_URL wins when set (redis://, rediss:// or unix://). Otherwise
// REDISHOST and REDISPORT are required, with REDISUSER, REDIS_PASSWORD and
// REDIS_DB optional.
//
// When nothing is set it returns an error that [errors.Is] matches to
// [ErrNotConfigured]; when only part of the host/port pair is set, the error
// names the missing variable and also matches [ErrNotConfigured]. A
// malformed value gives a [*ConfigError] naming the variable.
func ConfigFromEnv() (Config, error) {
	return configFrom(os.LookupEnv)
}

// configFrom is ConfigFromEnv with the lookup injected, for tests.
func configFrom(lookup func(string) (string, bool)) (Config, error) {
	get := func(k string) string {
		v, _ := lookup(k)
		return strings.TrimSpace(v)
	}
	if raw := get(EnvURL); raw != "" {
		cfg, err := ParseURL(raw)
		if err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) {
				ce.Var = EnvURL
			}
			return Config{}, err
		}
		return cfg, nil
	}
	host, port := get(EnvHost), get(EnvPort)
	switch {
	case host == "" && port == "":
		return Config{}, ErrNotConfigured
	case host == "":
		return Config{}, &ConfigError{Var: EnvHost, Err: fmt.Errorf("not set (%s is): %w", EnvPort, ErrNotConfigured)}
	case port == "":
		return Config{}, &ConfigError{Var: EnvPort, Err: fmt.Errorf("not set (%s is): %w", EnvHost, ErrNotConfigured)}
	}
	if strings.ContainsAny(host, "/@ ") || strings.Contains(host, "://") {
		return Config{}, &ConfigError{Var: EnvHost, Value: redactURL(host), Err: errors.New("want a host name or IP address, not a URL (use REDIS_URL for URLs)")}
	}
	if err := checkPort(port); err != nil {
		return Config{}, &ConfigError{Var: EnvPort, Value: port, Err: err}
	}
	cfg := Config{
		Network:  "tcp",
		Addr:     net.JoinHostPort(strings.Trim(host, "[]"), port),
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

// ParseURL parses a redis://, rediss:// or unix:// URL:
//
//	redis://[user[:password]@]host[:port][/db]
//	rediss://[user[:password]@]host[:port][/db]
//	unix://[user[:password]@]/path/to/socket[?db=N]
//
// Errors are [*ConfigError] values whose text shows the URL with its
// password replaced by ***; ParseURL never passes on an error that could
// echo the raw URL.
func ParseURL(raw string) (Config, error) {
	fail := func(err error) (Config, error) {
		return Config{}, &ConfigError{Var: "url", Value: redactURL(raw), Err: err}
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the raw URL, password included: keep only its reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fail(fmt.Errorf("malformed URL: %s", scrub(err.Error(), raw)))
	}
	cfg := Config{Network: "tcp"}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	q := u.Query()
	switch u.Scheme {
	case "redis", "rediss":
		cfg.TLS = u.Scheme == "rediss"
		host, port := u.Hostname(), u.Port()
		if host == "" {
			return fail(errors.New("missing host"))
		}
		if port == "" {
			if strings.HasSuffix(u.Host, ":") {
				return fail(errors.New("empty port"))
			}
			port = DefaultPort
		}
		if err := checkPort(port); err != nil {
			return fail(err)
		}
		cfg.Addr = net.JoinHostPort(host, port)
		if p := strings.Trim(u.Path, "/"); p != "" {
			n, err := parseDB(p)
			if err != nil {
				return fail(fmt.Errorf("database in path: %w", err))
			}
			cfg.DB = n
		}
	case "unix":
		cfg.Network = "unix"
		if u.Path == "" {
			return fail(errors.New("missing socket path"))
		}
		cfg.Addr = u.Path
	case "":
		return fail(errors.New("missing scheme: want redis://, rediss:// or unix://"))
	default:
		return fail(fmt.Errorf("unsupported scheme %q: want redis://, rediss:// or unix://", u.Scheme))
	}
	for k := range q {
		if k != "db" {
			return fail(fmt.Errorf("unsupported query parameter %q", k))
		}
	}
	if db := q.Get("db"); db != "" {
		n, err := parseDB(db)
		if err != nil {
			return fail(fmt.Errorf("db parameter: %w", err))
		}
		cfg.DB = n
	}
	return cfg, nil
}

func checkPort(port string) error {
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("invalid port %q: want a number from 1 to 65535", port)
	}
	return nil
}

func parseDB(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid database %q: want a number from 0 up", s)
	}
	return n, nil
}

// String returns the configuration as a URL with the password replaced by
// ***, in the form redis://user:***@host:port/db.
func (c Config) String() string {
	scheme := "redis"
	switch {
	case c.Network == "unix":
		scheme = "unix"
	case c.TLS:
		scheme = "rediss"
	}
	var b strings.Builder
	b.WriteString(scheme)
	b.WriteString("://")
	if c.Username != "" || c.Password != "" {
		b.WriteString(url.PathEscape(c.Username))
		if c.Password != "" {
			b.WriteString(":" + redacted)
		}
		b.WriteByte('@')
	}
	if c.Network == "unix" {
		b.WriteString(c.Addr)
		if c.DB != 0 {
			b.WriteString("?db=" + strconv.Itoa(c.DB))
		}
		return b.String()
	}
	b.WriteString(c.Addr)
	b.WriteString("/" + strconv.Itoa(c.DB))
	return b.String()
}

// LogValue makes slog print the redacted form of [Config.String].
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// redactURL hides the password of a URL-like string, even one too broken
// for net/url to parse: whatever stands between the first ':' of the
// user-info and the last '@' before the path becomes ***.
func redactURL(raw string) string {
	rest, scheme := raw, ""
	if i := strings.Index(raw, "://"); i >= 0 {
		scheme, rest = raw[:i+3], raw[i+3:]
	}
	// The authority ends at the first '/', '?' or '#' after the last '@'
	// that precedes them; passwords may themselves hold '/' or '#', so look
	// for the last '@' in the whole remainder first.
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return raw
	}
	userinfo := rest[:at]
	if i := strings.Index(userinfo, ":"); i >= 0 {
		userinfo = userinfo[:i+1] + redacted
	} else if scheme == "" {
		// "user@host" with no scheme: the part before @ may be a bare
		// password; hide it all.
		userinfo = redacted
	}
	return scheme + userinfo + rest[at:]
}

// scrub removes every appearance of the raw URL's password from s.
func scrub(s, raw string) string {
	red := redactURL(raw)
	s = strings.ReplaceAll(s, raw, red)
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			s = strings.ReplaceAll(s, p, redacted)
		}
	}
	// Without a parse, hide what redactURL hid.
	rest := raw
	if i := strings.Index(raw, "://"); i >= 0 {
		rest = raw[i+3:]
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		ui := rest[:at]
		if i := strings.Index(ui, ":"); i >= 0 && ui[i+1:] != "" {
			s = strings.ReplaceAll(s, ui[i+1:], redacted)
		}
	}
	return s
}
