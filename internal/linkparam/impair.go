package linkparam

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Impairment is a run-time impairment of the traffic flowing one way
// through a link, in the kernel's units: durations, percentages (0 to
// 100) and a rate in bits per second. It is what `ratchetctl link set`
// records with a link; the zero value impairs nothing.
type Impairment struct {
	Delay  time.Duration `json:"delay,omitempty"`
	Jitter time.Duration `json:"jitter,omitempty"`
	// Loss, Corrupt, Duplicate and Reorder are percentages, 0 to 100.
	Loss      float64 `json:"loss,omitempty"`
	Corrupt   float64 `json:"corrupt,omitempty"`
	Duplicate float64 `json:"duplicate,omitempty"`
	Reorder   float64 `json:"reorder,omitempty"`
	// Rate limits the traffic, in bits per second; 0 means no limit.
	Rate uint64 `json:"rate,omitempty"`
}

// ImpairmentFields are the names of Impairment's fields as Set takes
// them and its errors name them (`ratchetctl link set`'s flags).
var ImpairmentFields = []string{"delay", "jitter", "loss", "corrupt", "duplicate", "reorder", "rate"}

// Set parses value, as its parser does (ParseDelay, ParsePercent,
// ParseRate), into the field named name (one of ImpairmentFields); a
// rate of "0" takes the rate away. An error names the field. Set checks
// the field alone; Check checks the whole.
func (m *Impairment) Set(name, value string) error {
	var err error
	switch name {
	case "delay":
		m.Delay, err = ParseDelay(name, value)
	case "jitter":
		m.Jitter, err = ParseDelay(name, value)
	case "loss":
		m.Loss, err = ParsePercent(name, value)
	case "corrupt":
		m.Corrupt, err = ParsePercent(name, value)
	case "duplicate":
		m.Duplicate, err = ParsePercent(name, value)
	case "reorder":
		m.Reorder, err = ParsePercent(name, value)
	case "rate":
		m.Rate = 0
		if value != "0" {
			m.Rate, err = ParseRate(value)
		}
	default:
		return fmt.Errorf("%s: not an impairment (want one of %s)", name, strings.Join(ImpairmentFields, ", "))
	}
	return err
}

// IsZero reports whether the impairment impairs nothing.
func (m *Impairment) IsZero() bool { return m == nil || *m == Impairment{} }

// NeedsNetem reports whether the impairment takes the netem qdisc: all of
// it but a rate alone, which a token bucket (tbf) shapes.
func (m *Impairment) NeedsNetem() bool {
	return m != nil && (m.Delay != 0 || m.Jitter != 0 || m.Loss != 0 || m.Corrupt != 0 || m.Duplicate != 0 || m.Reorder != 0)
}

// Check reports a combination netem refuses or would ignore, naming the
// field as ParseImpairment does: a jitter or a reordering needs a delay
// (netem reorders by sending some packets at once while it delays the
// others). Each field's own range is checked by its parser.
func (m *Impairment) Check() error {
	if m.Jitter > 0 && m.Delay == 0 {
		return fmt.Errorf("jitter %s needs a delay", m.Jitter)
	}
	if m.Reorder > 0 && m.Delay == 0 {
		return fmt.Errorf("reorder %g%% needs a delay", m.Reorder)
	}
	return nil
}

// Validate checks a whole impairment read back from a store, which no
// parser saw: each field within what its flag accepts (ParseDelay,
// ParsePercent, ParseRate), then Check. An error names the field.
func (m *Impairment) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"delay", m.Delay}, {"jitter", m.Jitter}} {
		if d.v < 0 || d.v > MaxNetemDelay {
			return fmt.Errorf("%s %s is not between 0 and %s", d.name, d.v, MaxNetemDelay.Truncate(time.Millisecond))
		}
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"loss", m.Loss}, {"corrupt", m.Corrupt}, {"duplicate", m.Duplicate}, {"reorder", m.Reorder}} {
		if !(p.v >= 0 && p.v <= 100) {
			return fmt.Errorf("%s %g is not a percentage between 0 and 100", p.name, p.v)
		}
	}
	if m.Rate != 0 && (m.Rate < MinRate || m.Rate > math.MaxUint64/2) {
		return fmt.Errorf("rate %d bit/s is out of range", m.Rate)
	}
	return m.Check()
}

// String writes the impairment in tc's notation ("delay 10ms rate
// 10mbit"), "" for none.
func (m *Impairment) String() string {
	if m.IsZero() {
		return ""
	}
	var parts []string
	add := func(name, v string) { parts = append(parts, name+" "+v) }
	if m.Delay != 0 {
		add("delay", m.Delay.String())
	}
	if m.Jitter != 0 {
		add("jitter", m.Jitter.String())
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"loss", m.Loss}, {"corrupt", m.Corrupt}, {"duplicate", m.Duplicate}, {"reorder", m.Reorder}} {
		if p.v != 0 {
			add(p.name, strconv.FormatFloat(p.v, 'g', -1, 64)+"%")
		}
	}
	if m.Rate != 0 {
		add("rate", FormatRate(m.Rate))
	}
	return strings.Join(parts, " ")
}

// FormatRate writes a rate in bits per second in tc's largest exact unit
// ("10mbit", "1500kbit", "12bit").
func FormatRate(bits uint64) string {
	for _, u := range []struct {
		suffix string
		bits   uint64
	}{{"tbit", 1e12}, {"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}} {
		if bits >= u.bits && bits%u.bits == 0 {
			return strconv.FormatUint(bits/u.bits, 10) + u.suffix
		}
	}
	return strconv.FormatUint(bits, 10) + "bit"
}

// ParseDelay parses a delay or jitter such as "10ms" for field, within
// what netem can hold (MaxNetemDelay); "" is 0.
func ParseDelay(field, s string) (time.Duration, error) { return parseNonNegativeDuration(field, s) }

// ParsePercent parses a percentage such as "0.5%" or "0.5" for field
// (loss, corrupt, duplicate, reorder): 0 to 100, as netem's probabilities.
func ParsePercent(field, s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil || math.IsNaN(v) || v < 0 || v > 100 {
		return 0, fmt.Errorf("%s %q is not a percentage between 0%% and 100%%", field, s)
	}
	return v, nil
}
