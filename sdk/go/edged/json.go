package edged

import "math"

var pow10 = [23]float64{
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
}

func isDigit(s []byte, i int) bool { return i < len(s) && s[i] >= '0' && s[i] <= '9' }

// ParseNumber reads s, which must be one JSON number as a whole (no spaces, no leading
// '+', no leading zeros, no bare '.'); ok is false for anything else, including values
// beyond the float64 range. The same arithmetic as the C SDK's edged_parse_number, so the
// same text gives the same bits: exact when the digits form an integer below 2^53 and the
// decimal exponent is within ±22, otherwise within a few units in the last place. Digits
// past the 19th significant one are ignored. (strconv.ParseFloat rounds correctly and can
// differ in the last bit, which a printed average with 20 decimals shows.)
func ParseNumber(s []byte) (float64, bool) {
	var mant uint64
	sig := 0 // significant digits kept in mant
	exp10 := int32(0)
	neg := false
	i, n := 0, len(s)
	if n == 0 {
		return 0, false
	}
	if s[i] == '-' {
		neg = true
		i++
	}
	if i == n {
		return 0, false
	}
	switch {
	case s[i] == '0':
		i++
	case s[i] >= '1' && s[i] <= '9':
		for ; isDigit(s, i); i++ {
			if sig < 19 {
				mant = mant*10 + uint64(s[i]-'0')
				sig++
			} else {
				exp10++
			}
		}
	default:
		return 0, false
	}
	if i < n && s[i] == '.' {
		i++
		if !isDigit(s, i) {
			return 0, false
		}
		for ; isDigit(s, i); i++ {
			if sig < 19 {
				mant = mant*10 + uint64(s[i]-'0')
				exp10--
				if mant != 0 { // leading zeros of 0.000x carry no precision
					sig++
				}
			}
		}
	}
	if i < n && (s[i] == 'e' || s[i] == 'E') {
		eneg := false
		e := int32(0)
		i++
		if i < n && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		if !isDigit(s, i) {
			return 0, false
		}
		for ; isDigit(s, i); i++ {
			if e < 100000 { // saturate: the result is 0 or infinite anyway
				e = e*10 + int32(s[i]-'0')
			}
		}
		if eneg {
			exp10 -= e
		} else {
			exp10 += e
		}
	}
	if i != n {
		return 0, false
	}
	v := float64(mant)
	if mant != 0 {
		switch {
		case exp10 > 400:
			return 0, false
		case exp10 < -400:
			v = 0
		case exp10 >= 0:
			for ; exp10 > 22; exp10 -= 22 {
				v *= 1e22
			}
			v *= pow10[exp10]
		default:
			for ; exp10 < -22; exp10 += 22 {
				v /= 1e22
			}
			v /= pow10[-exp10]
		}
		if math.IsInf(v, 0) {
			return 0, false
		}
	}
	if neg {
		v = -v
	}
	return v, true
}

// ---- JSON scanning ------------------------------------------------------------------------

func skipWS(s []byte, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// skipString: i at the opening quote; the index after the closing quote, or -1.
func skipString(s []byte, i int) int {
	for i++; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			if i == len(s) {
				return -1
			}
		} else if s[i] == '"' {
			return i + 1
		}
	}
	return -1
}

// skipNested: i at '{' or '['. Bracket kinds are tracked in a 64-bit stack so that "{]"
// is refused; deeper nesting is refused too rather than guessed at.
func skipNested(s []byte, i int) int {
	var kinds uint64 // bit set = '{' at that depth
	depth := 0
	for i < len(s) {
		c := s[i]
		if c == '"' {
			if i = skipString(s, i); i < 0 {
				return -1
			}
			continue
		}
		if c == '{' || c == '[' {
			if depth == 64 {
				return -1
			}
			if c == '{' {
				kinds |= 1 << depth
			} else {
				kinds &^= 1 << depth
			}
			depth++
		} else if c == '}' || c == ']' {
			if depth == 0 {
				return -1
			}
			depth--
			if (kinds>>depth)&1 == 1 != (c == '}') {
				return -1
			}
			if depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return -1
}

func isDelim(c byte) bool {
	return c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// skipValue: scalar tokens run to the next delimiter; validity is judged separately and
// only for the value that is returned.
func skipValue(s []byte, i int) int {
	if i == len(s) {
		return -1
	}
	if s[i] == '"' {
		return skipString(s, i)
	}
	if s[i] == '{' || s[i] == '[' {
		return skipNested(s, i)
	}
	start := i
	for i < len(s) && !isDelim(s[i]) {
		i++
	}
	if i == start {
		return -1
	}
	return i
}

func scalarOK(v []byte) bool {
	switch string(v) {
	case "true", "false", "null":
		return true
	}
	_, ok := ParseNumber(v)
	return ok
}

// JSONField finds the first top-level key of the JSON object in json and returns its value
// exactly as written: a number, a string with its quotes, true/false/null, or a whole
// nested object or array. code is 0 when found, -1 when the object has no such key, -2
// when json is not an object or is malformed before the key is reached.
//
// A scanner, not a validator, with the C SDK's rules: it stops at the first match; the
// value is checked to be a complete token, not what is inside it; keys are compared byte
// for byte with their text between the quotes, so a key written with escapes does not
// match.
func JSONField(json []byte, key string) (raw []byte, code int) {
	i := skipWS(json, 0)
	if i == len(json) || json[i] != '{' {
		return nil, -2
	}
	i = skipWS(json, i+1)
	if i < len(json) && json[i] == '}' {
		return nil, -1
	}
	for {
		if i == len(json) || json[i] != '"' {
			return nil, -2
		}
		kend := skipString(json, i)
		if kend < 0 {
			return nil, -2
		}
		k := json[i+1 : kend-1]
		i = skipWS(json, kend)
		if i == len(json) || json[i] != ':' {
			return nil, -2
		}
		i = skipWS(json, i+1)
		vend := skipValue(json, i)
		if vend < 0 {
			return nil, -2
		}
		if string(k) == key {
			v := json[i:vend:vend]
			c := json[i]
			if c != '"' && c != '{' && c != '[' && !scalarOK(v) {
				return nil, -2
			}
			return v, 0
		}
		i = skipWS(json, vend)
		if i == len(json) {
			return nil, -2
		}
		if json[i] == '}' {
			return nil, -1
		}
		if json[i] != ',' {
			return nil, -2
		}
		i = skipWS(json, i+1)
	}
}
