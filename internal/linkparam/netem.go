package linkparam

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Netem is an impairment of the traffic leaving an interface, as tc-netem
// applies it.
type Netem struct {
	Delay  time.Duration
	Jitter time.Duration
	// Loss is a percentage, 0 to 100.
	Loss float64
	// Rate limits the interface, in bits per second; 0 means no limit.
	Rate uint64
}

// ParseNetem parses impairments written as tc writes them: "10ms", "1ms",
// "0.5%", "100mbit". Empty strings mean none. The error names the field.
func ParseNetem(delay, jitter, loss, rate string) (*Netem, error) {
	n := &Netem{}
	var err error
	if n.Delay, err = parseNonNegativeDuration("delay", delay); err != nil {
		return nil, err
	}
	if n.Jitter, err = parseNonNegativeDuration("jitter", jitter); err != nil {
		return nil, err
	}
	if n.Jitter > 0 && n.Delay == 0 {
		return nil, fmt.Errorf("jitter %q needs a delay", jitter)
	}
	if loss != "" {
		if n.Loss, err = ParseLoss(loss); err != nil {
			return nil, err
		}
	}
	if rate != "" {
		if n.Rate, err = ParseRate(rate); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// MaxNetemDelay is the longest delay or jitter tc-netem can hold: the
// kernel's netem options carry them as 32-bit counts of psched ticks (64 ns
// each), so anything longer would wrap silently (1h became 26.6 s).
const MaxNetemDelay = time.Duration(math.MaxUint32) * 64 * time.Nanosecond

// MinRate is the lowest rate netem can express: the kernel counts bytes per
// second, so a rate under one byte a second would become 0, "no limit".
const MinRate = 8

func parseNonNegativeDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > MaxNetemDelay {
		return 0, fmt.Errorf("%s %q is not a duration between 0 and %s (like \"10ms\")", field, s, MaxNetemDelay.Truncate(time.Millisecond))
	}
	return d, nil
}

// ParseLoss parses a loss percentage such as "0.5%" or "0.5".
func ParseLoss(s string) (float64, error) { return ParsePercent("loss", s) }

// rateUnits are tc's rate units, in bits per second.
var rateUnits = []struct {
	suffix string
	bits   float64
}{
	{"tbit", 1e12}, {"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1},
	{"tbps", 8e12}, {"gbps", 8e9}, {"mbps", 8e6}, {"kbps", 8e3}, {"bps", 8},
}

// ParseRate parses a rate in tc's units ("100mbit", "1gbit", "500kbps").
func ParseRate(s string) (uint64, error) {
	lower := strings.ToLower(s)
	for _, u := range rateUnits {
		if num, ok := strings.CutSuffix(lower, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			// The comparisons are written so that NaN fails them: NaN
			// compares false with everything, and uint64(NaN) is undefined.
			if err != nil || !(v*u.bits >= MinRate) || !(v*u.bits <= math.MaxUint64/2) {
				break
			}
			return uint64(v * u.bits), nil
		}
	}
	return 0, fmt.Errorf("rate %q is not a rate from 8bit (a byte a second) to 9e18bit, like \"100mbit\" or \"1gbit\"", s)
}
