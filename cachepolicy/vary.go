package cachepolicy

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
)

// VariantHashLen is the length of the suffix [AppendVariantKey] appends
// to a key: "~" and 32 hexadecimal digits.
const VariantHashLen = 1 + 32

// VaryFields returns the canonical field names a response's Vary field
// lists, sorted and without duplicates (nil when there are none), and star
// true when Vary holds "*" or anything that is not a field name: such a
// response varies on something no request field names, and is never
// stored (RFC 9111 section 4.1). Every Vary line is read; empty elements
// and surrounding whitespace are ignored.
func VaryFields(h http.Header) (names []string, star bool) {
	for _, line := range h["Vary"] {
		for rest := line; rest != ""; {
			var name string
			name, rest, _ = strings.Cut(rest, ",")
			name = trimOWS(name)
			switch {
			case name == "":
			case name == "*" || !IsToken(name):
				return nil, true
			default:
				names = append(names, textproto.CanonicalMIMEHeaderKey(name))
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names), false
}

// unkeyed returns the names not in keyHeaders (compared
// case-insensitively), or nil when there are none.
func unkeyed(names, keyHeaders []string) []string {
	var out []string
	for _, name := range names {
		keyed := false
		for _, k := range keyHeaders {
			if strings.EqualFold(name, k) {
				keyed = true
				break
			}
		}
		if !keyed {
			out = append(out, name)
		}
	}
	return out
}

// AppendVariantKey appends to dst the key of the variant that request
// header h selects among responses stored for base (a key from [Key])
// that vary on the fields names (canonical, as [StoreDecision.Vary]
// gives them): base, "~" and 32 hexadecimal digits of a SHA-256 over the
// names and, for each, whether h has it and its normalised value (see
// [NormalizeField]). Two requests get the same variant exactly when every
// named field is absent from both or normalises to the same value in both.
// The values are hashed, so no credential named by Vary reaches the store.
func AppendVariantKey(dst []byte, base string, h http.Header, names []string) []byte {
	var scratch [512]byte
	sum := sha256.Sum256(appendFields(scratch[:0], h, names, true))
	dst = append(dst, base...)
	dst = append(dst, '~')
	return hex.AppendEncode(dst, sum[:16])
}

// NormalizeField returns the value of request field name (canonical) for
// telling variants apart (RFC 9111 section 4.1): its field lines combined
// with ", ", each trimmed of surrounding whitespace. Accept-Encoding and
// Accept-Language are normalised by their meaning as well: names are
// lower-cased, quality values written in their shortest form (q=1 left
// out), whitespace dropped, and the elements sorted (Accept-Encoding by
// coding; Accept-Language by descending quality, keeping the order of
// equal ones, which may state a preference). A value that does not parse
// as such a list is only trimmed and combined, so it matches only itself.
func NormalizeField(name string, values []string) string {
	switch name {
	case "Accept-Encoding":
		if v, ok := normalizeAccept(values, false); ok {
			return v
		}
	case "Accept-Language":
		if v, ok := normalizeAccept(values, true); ok {
			return v
		}
	}
	if len(values) == 1 {
		return trimOWS(values[0])
	}
	var b strings.Builder
	for i, v := range values {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(trimOWS(v))
	}
	return b.String()
}

// acceptElem is one element of an Accept-Encoding or Accept-Language
// list: a lower-cased name and a quality in thousandths.
type acceptElem struct {
	name string
	q    int
}

// normalizeAccept normalises the lines of an Accept-Encoding (byQuality
// false) or Accept-Language (byQuality true) field; ok is false when an
// element is not a token (a language range may also hold "-") with an
// optional valid q parameter.
func normalizeAccept(values []string, byQuality bool) (string, bool) {
	var arr [16]acceptElem
	elems := arr[:0]
	for _, line := range values {
		for rest := line; rest != ""; {
			var el string
			el, rest, _ = strings.Cut(rest, ",")
			el = trimOWS(el)
			if el == "" {
				continue
			}
			name, params, hasParams := strings.Cut(el, ";")
			name = trimOWS(name)
			if !IsToken(name) {
				return "", false
			}
			q := 1000
			if hasParams {
				pn, pv, ok := strings.Cut(params, "=")
				if !ok || !strings.EqualFold(trimOWS(pn), "q") {
					return "", false
				}
				if q, ok = parseQuality(trimOWS(pv)); !ok {
					return "", false
				}
			}
			elems = append(elems, acceptElem{name: strings.ToLower(name), q: q})
		}
	}
	if byQuality {
		slices.SortStableFunc(elems, func(a, b acceptElem) int { return b.q - a.q })
	} else {
		slices.SortStableFunc(elems, func(a, b acceptElem) int {
			if c := strings.Compare(a.name, b.name); c != 0 {
				return c
			}
			return b.q - a.q
		})
	}
	var b strings.Builder
	for i, el := range elems {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(el.name)
		if el.q != 1000 {
			b.WriteString(";q=0")
			if el.q > 0 {
				frac := []byte{'.', byte('0' + el.q/100), byte('0' + el.q/10%10), byte('0' + el.q%10)}
				for frac[len(frac)-1] == '0' {
					frac = frac[:len(frac)-1]
				}
				b.Write(frac)
			}
		}
	}
	return b.String(), true
}

// parseQuality parses a qvalue (RFC 9110 section 12.4.2): "0" or "1" with
// up to three decimals, at most 1. It returns thousandths.
func parseQuality(s string) (int, bool) {
	if s == "" || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	q := int(s[0]-'0') * 1000
	if len(s) == 1 {
		return q, true
	}
	if s[1] != '.' || len(s) > 5 {
		return 0, false
	}
	scale := 100
	for i := 2; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		q += int(c-'0') * scale
		scale /= 10
	}
	if q > 1000 {
		return 0, false
	}
	return q, true
}
