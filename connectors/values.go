package connectors

import (
	"math"
	"math/big"
	"strconv"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// This file parses the text forms of values (CSV fields, JSON strings and
// numbers). The parsers take byte slices and do not allocate on success.

const microsPerDay = 86400 * 1_000_000

// quoteValue renders an input value for an error message, shortened so a
// huge field cannot flood the terminal.
func quoteValue(b []byte) string {
	const max = 40
	if len(b) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(b[cut]) {
			cut--
		}
		return strconv.Quote(string(b[:cut])) + "…"
	}
	return strconv.Quote(string(b))
}

// parseBool accepts true/false in the spellings strconv.ParseBool accepts:
// 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False.
func parseBool(b []byte) (bool, error) {
	switch string(b) {
	case "1", "t", "T", "TRUE", "true", "True":
		return true, nil
	case "0", "f", "F", "FALSE", "false", "False":
		return false, nil
	}
	return false, valueErrf("invalid bool %s: want true or false", quoteValue(b))
}

// parseInt parses a base-10 integer with an optional sign that fits in
// bits bits.
func parseInt(b []byte, bits int) (int64, error) {
	s := b
	neg := false
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if len(s) == 0 {
		return 0, valueErrf("invalid int%d %s: want a base-10 integer", bits, quoteValue(b))
	}
	limit := uint64(1) << (bits - 1) // |min|; max is limit-1
	var n uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, valueErrf("invalid int%d %s: want a base-10 integer", bits, quoteValue(b))
		}
		if n > (limit+9)/10 { // certainly out of range, and avoids wrapping
			return 0, valueErrf("%s overflows int%d", quoteValue(b), bits)
		}
		n = n*10 + uint64(c-'0')
	}
	if (!neg && n >= limit) || (neg && n > limit) {
		return 0, valueErrf("%s overflows int%d", quoteValue(b), bits)
	}
	if neg {
		return -int64(n), nil // wraps correctly at the minimum, -2^(bits-1)
	}
	return int64(n), nil
}

// parseFloat parses a float64 as strconv.ParseFloat does (decimal or
// hexadecimal notation, inf, infinity and nan in any case), rejecting
// values that overflow float64.
func parseFloat(b []byte) (float64, error) {
	if len(b) == 0 {
		return 0, valueErrf("invalid float64 \"\"")
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange && !math.IsInf(f, 0) {
			return f, nil // underflow to a denormal or zero: nearest float64, as for any decimal input
		}
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 0, valueErrf("%s overflows float64", quoteValue(b))
		}
		return 0, valueErrf("invalid float64 %s", quoteValue(b))
	}
	return f, nil
}

func digits2(b []byte) (int, bool) {
	if b[0] < '0' || b[0] > '9' || b[1] < '0' || b[1] > '9' {
		return 0, false
	}
	return int(b[0]-'0')*10 + int(b[1]-'0'), true
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the number of days from 1970-01-01 to y-m-d in the
// proleptic Gregorian calendar.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y, m, d int) {
	z += 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	yy := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	if mp < 10 {
		m = int(mp + 3)
	} else {
		m = int(mp - 9)
	}
	if m <= 2 {
		yy++
	}
	return int(yy), m, d
}

// parseYMD parses YYYY-MM-DD at the start of b.
func parseYMD(b []byte) (int64, bool) {
	if len(b) < 10 || b[4] != '-' || b[7] != '-' {
		return 0, false
	}
	hi, ok1 := digits2(b[0:2])
	lo, ok2 := digits2(b[2:4])
	m, ok3 := digits2(b[5:7])
	d, ok4 := digits2(b[8:10])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return 0, false
	}
	y := hi*100 + lo
	if m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, false
	}
	return daysFromCivil(y, m, d), true
}

// parseDate parses an ISO 8601 calendar date, YYYY-MM-DD, into days since
// 1970-01-01.
func parseDate(b []byte) (int32, error) {
	days, ok := parseYMD(b)
	if !ok || len(b) != 10 {
		return 0, valueErrf("invalid date %s: want YYYY-MM-DD", quoteValue(b))
	}
	return int32(days), nil
}

// parseTimestamp parses an RFC 3339 timestamp into microseconds since the
// Unix epoch, UTC:
//
//	YYYY-MM-DD('T'|'t'|' ')HH:MM:SS[.F{1,9}]('Z'|'z'|('+'|'-')HH:MM)
//
// Digits beyond the sixth fractional digit must be zeros (the contract's
// timestamp holds microseconds). With assumeUTC, a timestamp without an
// offset is taken to be UTC; otherwise it is an error.
func parseTimestamp(b []byte, assumeUTC bool) (int64, error) {
	bad := func(why string) (int64, error) {
		return 0, valueErrf("invalid timestamp %s: %s", quoteValue(b), why)
	}
	const want = "want RFC 3339 such as 2026-01-02T15:04:05Z or 2026-01-02T15:04:05.123456+01:00"
	days, ok := parseYMD(b)
	if !ok || len(b) < 19 || (b[10] != 'T' && b[10] != 't' && b[10] != ' ') || b[13] != ':' || b[16] != ':' {
		return bad(want)
	}
	hh, ok1 := digits2(b[11:13])
	mm, ok2 := digits2(b[14:16])
	ss, ok3 := digits2(b[17:19])
	if !ok1 || !ok2 || !ok3 || hh > 23 || mm > 59 || ss > 59 {
		return bad(want)
	}
	us := days*microsPerDay + int64(hh*3600+mm*60+ss)*1_000_000
	rest := b[19:]
	if len(rest) > 0 && rest[0] == '.' {
		i := 1
		var frac int64
		for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
			switch {
			case i > 9:
				return bad("more than 9 fractional digits")
			case i <= 6:
				frac = frac*10 + int64(rest[i]-'0')
			case rest[i] != '0':
				return bad("sub-microsecond precision would be lost; the contract's timestamp holds microseconds")
			}
		}
		if i == 1 {
			return bad(want)
		}
		for n := min(i-1, 6); n < 6; n++ {
			frac *= 10
		}
		us += frac
		rest = rest[i:]
	}
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits2(rest[1:3])
		om, ok2 := digits2(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return bad("invalid UTC offset")
		}
		off := int64(oh*3600+om*60) * 1_000_000
		if rest[0] == '+' {
			us -= off
		} else {
			us += off
		}
	case len(rest) == 0:
		if !assumeUTC {
			return bad("no UTC offset; append Z (UTC) or an offset such as +02:00")
		}
	default:
		return bad(want)
	}
	return us, nil
}

// parseDecimal parses a plain decimal number ([+-]digits[.digits] or
// [+-].digits) into the unscaled integer of decimal(prec, scale). It is an
// error when the value has more than scale significant fractional digits
// (they would be lost) or more than prec digits in all (overflow).
// Exponent notation is not accepted.
func parseDecimal(b []byte, prec, scale int32) (decimal128.Num, error) {
	s := b
	neg := false
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	intPart := s
	var frac []byte
	for i, c := range s {
		if c == '.' {
			intPart, frac = s[:i], s[i+1:]
			break
		}
	}
	if len(intPart)+len(frac) == 0 {
		return decimal128.Num{}, valueErrf("invalid decimal(%d,%d) %s: want digits with an optional sign and decimal point, no exponent", prec, scale, quoteValue(b))
	}
	for _, part := range [][]byte{intPart, frac} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return decimal128.Num{}, valueErrf("invalid decimal(%d,%d) %s: want digits with an optional sign and decimal point, no exponent", prec, scale, quoteValue(b))
			}
		}
	}
	for len(frac) > int(scale) {
		if frac[len(frac)-1] != '0' {
			return decimal128.Num{}, valueErrf("%s has more than %d decimal places and does not fit decimal(%d,%d) exactly", quoteValue(b), scale, prec, scale)
		}
		frac = frac[:len(frac)-1]
	}
	for len(intPart) > 0 && intPart[0] == '0' {
		intPart = intPart[1:]
	}
	if len(intPart) > int(prec-scale) {
		return decimal128.Num{}, valueErrf("%s overflows decimal(%d,%d): at most %d digits before the decimal point", quoteValue(b), prec, scale, prec-scale)
	}
	pad := int(scale) - len(frac)
	var n decimal128.Num
	if len(intPart)+int(scale) <= 18 {
		var u uint64
		for _, c := range intPart {
			u = u*10 + uint64(c-'0')
		}
		for _, c := range frac {
			u = u*10 + uint64(c-'0')
		}
		for range pad {
			u *= 10
		}
		n = decimal128.FromU64(u)
	} else {
		var z big.Int
		ten := big.NewInt(10)
		for _, part := range [][]byte{intPart, frac} {
			for _, c := range part {
				z.Mul(&z, ten)
				z.Add(&z, big.NewInt(int64(c-'0')))
			}
		}
		for range pad {
			z.Mul(&z, ten)
		}
		n = decimal128.FromBigInt(&z)
	}
	if neg {
		n = n.Negate()
	}
	return n, nil
}
