package resilience

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
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

// ParseURL parses a redis://, rediss:// or unix:// URL:
//
//	redis://[user[:password]@]host[:port][/db]
//	rediss://[user[:password]@]host[:port][/db]
//	unix://[user[:password]@]/path/to/socket[?db=N]
//
// A URL with a master_name parameter is a Sentinel URL, in go-redis's
// ParseFailoverURL form: the host and every addr= are sentinels, the
// user-info (or sentinel_username= and sentinel_password=) the sentinels'
// own credentials, and username= and password= the data nodes':
//
//	redis://[user:sentinelpw@]sentinel1:26379[/db]?master_name=mymaster&addr=sentinel2:26379&password=datapw
//
// Errors are [*ConfigError] values whose text shows the URL with its
// password replaced by ***; ParseURL never passes on an error that could
// echo the raw URL.
func ParseURL(raw string) (Config, error) {
	if hasMasterName(raw) {
		return parseTopologyURL(raw, TopologySentinel)
	}
	fail := func(err error) (Config, error) {
		return Config{}, &ConfigError{Var: "url", Value: redactURL(raw), Err: errors.New(scrub(err.Error(), raw))}
	}
	// A '/', '?' or '#' left unescaped in a password would make net/url end
	// the authority early: it would then read part of the password as a
	// host or port, and either echo it in its error or, worse, accept the
	// URL with the wrong host. Refuse such URLs before parsing.
	if ui, ok := rawUserinfo(raw); ok && strings.Contains(ui, ":") && strings.ContainsAny(ui, "/?#") {
		return fail(errors.New("user name or password holds an unescaped '/', '?' or '#': percent-encode it"))
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the raw URL, and its reason may quote a piece of
		// it (an escape, a port) that can lie inside the password: keep
		// only the reason's fixed words.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fail(fmt.Errorf("malformed URL: %s", unquote(err.Error())))
	}
	cfg := Config{Network: "tcp"}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	switch u.Scheme {
	case "redis", "rediss":
		cfg.TLS = u.Scheme == "rediss"
		host, port := u.Hostname(), u.Port()
		if host == "" {
			return fail(errors.New("missing host"))
		}
		if strings.Contains(host, ":") && !strings.HasPrefix(u.Host, "[") {
			// net/url reads redis://::1 as host ":" and port 1.
			return fail(errors.New("invalid host: put an IPv6 address in brackets"))
		}
		if port == "" {
			if strings.HasSuffix(u.Host, ":") {
				return fail(errors.New("empty port"))
			}
			port = DefaultPort
		}
		port, err := checkPort(port)
		if err != nil {
			return fail(err)
		}
		cfg.Addr = net.JoinHostPort(host, port)
		// The escaped path, not the decoded one: an error must show what
		// the URL holds, not what a percent-escape decodes to.
		if p := strings.Trim(u.EscapedPath(), "/"); p != "" {
			n, err := parseDB(p)
			if err != nil {
				return fail(fmt.Errorf("database in path: %w", err))
			}
			cfg.DB = n
		}
	case "unix":
		cfg.Network = "unix"
		if u.Host != "" {
			// unix://tmp/redis.sock would otherwise mean /redis.sock.
			return fail(errors.New("unexpected host: want unix:///path/to/socket (three slashes)"))
		}
		if u.Path == "" {
			return fail(errors.New("missing socket path"))
		}
		cfg.Addr = u.Path
	case "":
		return fail(errors.New("missing scheme: want redis://, rediss:// or unix://"))
	default:
		return fail(fmt.Errorf("unsupported scheme %q: want redis://, rediss:// or unix://", u.Scheme))
	}
	// The raw query, split by hand: decoded keys or values in an error
	// could spell out what the URL had escaped.
	seen := false
	for _, kv := range strings.Split(u.RawQuery, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if k != "db" {
			return fail(fmt.Errorf("unsupported query parameter %q", k))
		}
		if seen {
			return fail(errors.New("db parameter given twice"))
		}
		seen = true
		n, err := parseDB(v)
		if err != nil {
			return fail(fmt.Errorf("db parameter: %w", err))
		}
		cfg.DB = n
	}
	return cfg, nil
}

// checkPort validates a decimal port and returns it in canonical form
// ("06379" becomes "6379"; signs are refused).
func checkPort(port string) (string, error) {
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n < 1 {
		return "", fmt.Errorf("invalid port %q: want a number from 1 to 65535", port)
	}
	return strconv.FormatUint(n, 10), nil
}

func parseDB(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, fmt.Errorf("invalid database %q: want a number from 0 up", s)
	}
	return int(n), nil
}

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

// Redact returns s with every credential it can recognise replaced by
// ***: the password of a URL's user-info (redis://user:***@host), a URL's
// lone user-info, which some providers use for a token (redis://***@host),
// and the value of every key=value or key: value pair, query parameters
// included, whose key names a secret (password, sentinel_password, pwd,
// secret, token, auth, apikey, credential, in any case, percent-escaped or
// not). It is the one scrubber of this module: configuration errors, log
// lines and health reports pass through it. Its patterns never match across
// a double quote or a backslash, so scrubbing encoded JSON keeps it valid.
func Redact(s string) string {
	if !strings.Contains(s, "@") && !strings.ContainsAny(s, "=:") {
		return s // the common case, at no cost
	}
	s = urlUserinfo.ReplaceAllStringFunc(s, func(m string) string {
		sub := urlUserinfo.FindStringSubmatch(m)
		scheme, info := sub[1], sub[2]
		if user, _, ok := strings.Cut(info, ":"); ok {
			return scheme + user + ":" + redacted + "@"
		}
		return scheme + redacted + "@"
	})
	return redactPairs(s)
}

// urlUserinfo matches scheme://userinfo@ : the user-info of any URL, up to
// its last @ before a space, slash, quote or backslash (a password may hold
// an @). A read-only table of [Redact].
var urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)([^\s/"\\]*)@`)

// redactPairs hides the value of every key=value or key: value pair whose
// key names a secret. Each '=' and ':' is looked at, so a pair that is not
// a secret never hides one that follows it ("failed: password=x").
func redactPairs(s string) string {
	var b strings.Builder
	done := 0 // s[:done] is in b
	for i := 0; i < len(s); i++ {
		if s[i] != '=' && s[i] != ':' {
			continue
		}
		k := i
		for k > done && (s[k-1] == ' ' || s[k-1] == '\t') {
			k--
		}
		kEnd := k
		for k > done && !isPairStop(s[k-1], true) {
			k--
		}
		if k == kEnd || !isSecretKey(s[k:kEnd]) {
			continue
		}
		v := i + 1
		for v < len(s) && (s[v] == ' ' || s[v] == '\t') {
			v++
		}
		vEnd := v
		for vEnd < len(s) && !isPairStop(s[vEnd], false) {
			vEnd++
		}
		if vEnd == v {
			continue
		}
		b.WriteString(s[done:v])
		b.WriteString(redacted)
		done = vEnd
		i = vEnd - 1
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// isPairStop reports whether c ends a key (looking back) or a value
// (looking forward). Neither runs across a quote or a backslash, so JSON
// stays valid.
func isPairStop(c byte, key bool) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '\v', '\f', '"', '\'', '\\', ',', ';', '&':
		return true
	case '?', '=', ':', '/', '{', '(', '[':
		return key
	}
	return false
}

// secretWords are the parts of a key that make its value a secret.
var secretWords = []string{"pass", "pwd", "secret", "token", "auth", "apikey", "api_key", "api-key", "credential"}

// isSecretKey reports whether key, percent-decoded and in any case, names a
// secret. A key that does not decode is taken for one.
func isSecretKey(key string) bool {
	k, err := url.QueryUnescape(key)
	if err != nil {
		return true
	}
	k = strings.ToLower(k)
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// redactURL hides the secrets of a URL-like string, even one too broken
// for net/url to parse: whatever stands between the first ':' of the
// user-info and the last '@' (or the whole user-info when it has no ':'),
// and the value of every query parameter whose key names a secret
// (password=, sentinel_password=, ...). It may hide more than the
// secrets, never less.
func redactURL(raw string) string {
	start, end := secretSpan(raw)
	if start >= 0 {
		raw = raw[:start] + redacted + raw[end:]
		end = start + len(redacted)
	} else {
		end = 0
	}
	if q := strings.IndexByte(raw[end:], '?'); q >= 0 {
		q += end + 1
		raw = raw[:q] + redactQuery(raw[q:])
	}
	return Redact(raw)
}

// redactQuery hides the values of secret parameters in a raw query (which
// may run on into a fragment), split at '&' and ';' as any parser might.
func redactQuery(q string) string {
	var b strings.Builder
	rest := q
	for {
		i := strings.IndexAny(rest, "&;")
		pair := rest
		if i >= 0 {
			pair = rest[:i]
		}
		if k, _, ok := strings.Cut(pair, "="); ok && isSecretKey(k) {
			pair = k + "=" + redacted
		}
		b.WriteString(pair)
		if i < 0 {
			return b.String()
		}
		b.WriteByte(rest[i])
		rest = rest[i+1:]
	}
}

// querySecrets returns the values of the secret parameters of raw's query,
// as written and as decoded, for scrub to hunt down.
func querySecrets(raw string) []string {
	_, q, ok := strings.Cut(raw, "?")
	if !ok {
		return nil
	}
	var out []string
	for _, pair := range strings.FieldsFunc(q, func(r rune) bool { return r == '&' || r == ';' }) {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || v == "" || !isSecretKey(k) {
			continue
		}
		out = append(out, v)
		if d, err := url.QueryUnescape(v); err == nil && d != v {
			out = append(out, d)
		}
	}
	return out
}

// secretSpan returns where the password of raw starts and ends, or -1, -1.
// The authority ends at the first '/', '?' or '#' after the last '@' that
// precedes them; passwords may themselves hold '/' or '#', so the span runs
// to the last '@' of the whole remainder. That may hide more than the
// password, never less. A user-info with no ':' is all hidden: some
// providers give a token there (redis://TOKEN@host).
func secretSpan(raw string) (start, end int) {
	off := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		off = i + 3
	}
	rest := raw[off:]
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return -1, -1
	}
	if i := strings.Index(rest[:at], ":"); i >= 0 {
		return off + i + 1, off + at
	}
	if off == 0 || !strings.HasPrefix(rest, "/") && at > 0 {
		// "secret@host" with no scheme, or a lone user-info: it may be a
		// bare password or token; hide it all.
		return off, off + at
	}
	return -1, -1
}

// scrub removes from s every secret of raw: what redactURL hides, the
// password and lone user-info as net/url decodes them, and the secret
// query values as written and decoded. It is the last guard on an error
// reason about raw.
func scrub(s, raw string) string {
	var secrets []string
	if start, end := secretSpan(raw); start >= 0 && end > start {
		secrets = append(secrets, raw[start:end])
	}
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			secrets = append(secrets, p)
		} else {
			secrets = append(secrets, u.User.Username())
		}
	}
	secrets = append(secrets, querySecrets(raw)...)
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, redacted)
		}
	}
	return Redact(s)
}

// rawUserinfo returns the user-info of raw as written, even when raw is
// too broken for net/url: what stands between "://" and the last '@' (for
// unix://, the first "@/", since a socket path may hold '@'). A remainder
// that starts with '/' (unix:///path) has no user-info.
func rawUserinfo(raw string) (string, bool) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || strings.HasPrefix(rest, "/") {
		return "", false
	}
	end := strings.LastIndex(rest, "@")
	if strings.EqualFold(scheme, "unix") {
		end = strings.Index(rest, "@/")
	}
	if end < 0 {
		return "", false
	}
	return rest[:end], true
}

// unquote drops every double-quoted part of a net/url error reason, such
// as the escape in `invalid URL escape "%zz"`, keeping its fixed words.
func unquote(s string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(strings.TrimRight(s[:i], " "))
		j := quotedEnd(s[i:])
		if j < 0 {
			break // unbalanced: drop the rest
		}
		s = s[i+j:]
	}
	return b.String()
}

// quotedEnd returns the length of the Go-quoted string that s starts with,
// or -1.
func quotedEnd(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}
