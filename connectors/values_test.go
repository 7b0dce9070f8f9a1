package connectors

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestParseDecimalUnscaled(t *testing.T) {
	cases := []struct {
		in       string
		p, s     int32
		unscaled string
	}{
		{"-0.5", 5, 2, "-50"},
		{".5", 5, 2, "50"},
		{"7.", 5, 2, "700"},
		{"1.2300", 5, 2, "123"},
		{"-0", 5, 2, "0"},
		{"+000.01", 5, 2, "1"},
		{"12345678901234567.8", 19, 1, "123456789012345678"},
		{"123456789012345678.9", 20, 1, "1234567890123456789"},
		{"99999999999999999999999999999999999999", 38, 0, "99999999999999999999999999999999999999"},
		{"-9999999999999999999999999999.9999999999", 38, 10, "-99999999999999999999999999999999999999"},
		{"1", 38, 37, "10000000000000000000000000000000000000"},
	}
	for _, c := range cases {
		n, err := parseDecimal([]byte(c.in), c.p, c.s)
		if err != nil {
			t.Errorf("%q decimal(%d,%d): %v", c.in, c.p, c.s, err)
			continue
		}
		if got := n.BigInt().String(); got != c.unscaled {
			t.Errorf("%q decimal(%d,%d): unscaled %s, want %s", c.in, c.p, c.s, got, c.unscaled)
		}
	}
}

func TestParseTimestampMatchesTime(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		// Any instant between years 1 and 9999, any offset.
		us := rng.Int64N(253402300799999999+62135596800000000) - 62135596800000000
		off := (rng.IntN(24*60*2-1) - (24*60 - 1)) * 60
		zone := time.FixedZone("", off)
		tm := time.UnixMicro(us).In(zone)
		if tm.Year() < 1 || tm.Year() > 9999 {
			continue
		}
		s := tm.Format(time.RFC3339Nano)
		got, err := parseTimestamp([]byte(s), false)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if got != us {
			t.Fatalf("%s: got %d µs, want %d", s, got, us)
		}
		days := int64(rng.IntN(2932897+719162) - 719162)
		d := time.Unix(days*86400, 0).UTC().Format("2006-01-02")
		gotDays, err := parseDate([]byte(d))
		if err != nil || int64(gotDays) != days {
			t.Fatalf("%s: got %d, %v; want %d", d, gotDays, err, days)
		}
		if back := string(appendDate(nil, days)); back != d {
			t.Fatalf("day %d formats as %s, want %s", days, back, d)
		}
	}
}

func TestParseInt(t *testing.T) {
	for _, c := range []struct {
		in   string
		bits int
		want int64
		ok   bool
	}{
		{"0", 32, 0, true}, {"-0", 32, 0, true}, {"2147483647", 32, 2147483647, true}, {"-2147483648", 32, -2147483648, true},
		{"2147483648", 32, 0, false}, {"-2147483649", 32, 0, false}, {"18446744073709551616", 64, 0, false},
		{"-9223372036854775809", 64, 0, false}, {"99999999999999999999", 64, 0, false}, {"", 64, 0, false}, {"+", 64, 0, false},
		{"1_000", 64, 0, false}, {"١", 64, 0, false},
	} {
		got, err := parseInt([]byte(c.in), c.bits)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseInt(%q, %d) = %d, %v", c.in, c.bits, got, err)
		}
	}
}
