package linkparam

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParsePercentNamesTheField(t *testing.T) {
	for _, field := range []string{"loss", "corrupt", "duplicate", "reorder"} {
		if v, err := ParsePercent(field, "2.5%"); err != nil || v != 2.5 {
			t.Errorf("%s 2.5%%: %v, %v", field, v, err)
		}
		if v, err := ParsePercent(field, "100"); err != nil || v != 100 {
			t.Errorf("%s 100: %v, %v", field, v, err)
		}
		for _, bad := range []string{"101%", "-1%", "x", "NaN", ""} {
			_, err := ParsePercent(field, bad)
			if err == nil || !strings.HasPrefix(err.Error(), field+" ") {
				t.Errorf("%s %q: %v, want an error naming %s", field, bad, err, field)
			}
		}
	}
	// The network config's loss keeps its notation and error.
	if _, err := ParseLoss("200%"); err == nil || err.Error() != `loss "200%" is not a percentage between 0% and 100%` {
		t.Errorf("ParseLoss: %v", err)
	}
}

func TestImpairmentCheck(t *testing.T) {
	for _, c := range []struct {
		m     Impairment
		field string // "" when valid
	}{
		{Impairment{Delay: time.Millisecond, Jitter: time.Millisecond, Reorder: 25}, ""},
		{Impairment{Rate: 1e6}, ""},
		{Impairment{Jitter: time.Millisecond}, "jitter"},
		{Impairment{Reorder: 25}, "reorder"},
		{Impairment{Reorder: 25, Rate: 1e6}, "reorder"},
	} {
		err := c.m.Check()
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%+v: %v", c.m, err)
		case c.field != "" && (err == nil || !strings.HasPrefix(err.Error(), c.field+" ")):
			t.Errorf("%+v: %v, want an error naming %s", c.m, err, c.field)
		}
	}
	if _, err := ParseDelay("delay", "275s"); err == nil || !strings.HasPrefix(err.Error(), "delay ") {
		t.Errorf("a delay past netem's 32-bit ticks: %v", err)
	}
}

func TestImpairmentKinds(t *testing.T) {
	var none *Impairment
	if !none.IsZero() || !(&Impairment{}).IsZero() || none.NeedsNetem() {
		t.Error("nil or zero impairment is not empty")
	}
	if (&Impairment{Rate: 1e6}).NeedsNetem() {
		t.Error("a rate alone needs netem; tbf shapes it")
	}
	for _, m := range []Impairment{{Delay: 1}, {Loss: 1}, {Corrupt: 1}, {Duplicate: 1}, {Delay: 1, Reorder: 1}, {Delay: 1, Rate: 8}} {
		if !m.NeedsNetem() {
			t.Errorf("%+v does not need netem", m)
		}
	}
	m := Impairment{Delay: 10 * time.Millisecond, Loss: 0.5, Rate: 10e6}
	if got, want := m.String(), "delay 10ms loss 0.5% rate 10mbit"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for bits, want := range map[uint64]string{1500e3: "1500kbit", 12: "12bit", 1e9: "1gbit", 1234567: "1234567bit"} {
		if got := FormatRate(bits); got != want {
			t.Errorf("FormatRate(%d) = %q, want %q", bits, got, want)
		}
	}
}

// TestValidate: an impairment read back from a store is checked field by
// field as the flags are, and as a whole.
func TestValidate(t *testing.T) {
	for _, m := range []Impairment{{}, {Rate: 8_000_000}, {Delay: time.Millisecond, Jitter: time.Microsecond, Reorder: 5}, {Loss: 100}} {
		if err := m.Validate(); err != nil {
			t.Errorf("%+v: %v", m, err)
		}
	}
	for _, m := range []Impairment{{Loss: 101}, {Loss: -1}, {Corrupt: math.NaN()}, {Delay: -time.Second},
		{Delay: MaxNetemDelay + time.Second}, {Rate: 1}, {Jitter: time.Millisecond}, {Reorder: 1}} {
		if err := m.Validate(); err == nil {
			t.Errorf("%+v: valid, want an error", m)
		}
	}
}

// TestImpairmentSet: Set parses each field as its own parser does, names
// the field in its errors, and takes a rate away with "0".
func TestImpairmentSet(t *testing.T) {
	var m Impairment
	for name, v := range map[string]string{"delay": "10ms", "jitter": "1ms", "loss": "0.5%", "corrupt": "1", "duplicate": "2%", "reorder": "25", "rate": "10mbit"} {
		if err := m.Set(name, v); err != nil {
			t.Fatalf("Set(%s, %s): %v", name, v, err)
		}
	}
	want := Impairment{Delay: 10 * time.Millisecond, Jitter: time.Millisecond, Loss: 0.5, Corrupt: 1, Duplicate: 2, Reorder: 25, Rate: 10e6}
	if m != want {
		t.Fatalf("after Set: %+v, want %+v", m, want)
	}
	if err := m.Set("rate", "0"); err != nil || m.Rate != 0 {
		t.Errorf(`Set(rate, "0"): rate %d, %v; want no rate`, m.Rate, err)
	}
	if len(ImpairmentFields) != 7 {
		t.Errorf("ImpairmentFields: %v", ImpairmentFields)
	}
	for _, name := range ImpairmentFields {
		if err := m.Set(name, "x"); err == nil || !strings.HasPrefix(err.Error(), name) {
			t.Errorf("Set(%s, x): %v, want an error naming %s", name, err, name)
		}
	}
	if err := m.Set("limit", "10"); err == nil {
		t.Error("Set(limit): no error for a field that is not an impairment")
	}
}
