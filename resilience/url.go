package resilience

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

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
	u, err := parseRaw(raw)
	if err != nil {
		return fail(err)
	}
	cfg := Config{Network: "tcp"}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	switch u.Scheme {
	case "redis", "rediss":
		cfg.TLS = u.Scheme == "rediss"
		addr, err := hostPort(u.Hostname(), u.Port(), u.Host)
		if err != nil {
			return fail(err)
		}
		cfg.Addr = addr
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

// parseRaw is url.Parse for [ParseURL] and [ParseClusterURL], with a
// reason that never quotes raw: the caller still scrubs it and adds the
// redacted URL.
func parseRaw(raw string) (*url.URL, error) {
	// A '/', '?' or '#' left unescaped in a password would make net/url end
	// the authority early: it would then read part of the password as a
	// host or port, and either echo it in its error or, worse, accept the
	// URL with the wrong host. Refuse such URLs before parsing.
	if ui, ok := rawUserinfo(raw); ok && strings.Contains(ui, ":") && strings.ContainsAny(ui, "/?#") {
		return nil, errors.New("user name or password holds an unescaped '/', '?' or '#': percent-encode it")
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
		return nil, fmt.Errorf("malformed URL: %s", unquote(err.Error()))
	}
	return u, nil
}

// hostPort checks a host and port as net/url split them (hostport is the
// whole, for the checks net/url does not make) and joins them, with the
// default port when none is given.
func hostPort(host, port, hostport string) (string, error) {
	if host == "" {
		return "", errors.New("missing host")
	}
	if strings.Contains(host, ":") && !strings.HasPrefix(hostport, "[") {
		// net/url reads redis://::1 as host ":" and port 1.
		return "", errors.New("invalid host: put an IPv6 address in brackets")
	}
	if port == "" {
		if strings.HasSuffix(hostport, ":") {
			return "", errors.New("empty port")
		}
		port = DefaultPort
	}
	port, err := checkPort(port)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, port), nil
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
