package resilience

import (
	"net/url"
	"regexp"
	"strings"
)

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
