package linkparam

import (
	"strings"
	"testing"
	"time"
)

// TestNetemRefusesWhatTheKernelCannotHold: delays past the kernel's 32-bit
// tick field and rates that are not finite positive numbers are refused,
// naming the field, instead of wrapping or becoming "no limit".
func TestNetemRefusesWhatTheKernelCannotHold(t *testing.T) {
	for _, c := range []struct {
		delay, jitter, rate string
		field               string
	}{
		{delay: "1h", field: "delay"},
		{delay: "275s", field: "delay"},
		{delay: "1s", jitter: "5m", field: "jitter"},
		{rate: "NaNmbit", field: "rate"},
		{rate: "nanbit", field: "rate"},
		{rate: "Infmbit", field: "rate"},
		{rate: "+Infgbit", field: "rate"},
		{rate: "-1mbit", field: "rate"},
		{rate: "-NaNbit", field: "rate"},
		{rate: "1e30tbit", field: "rate"},
		{rate: "0.5bit", field: "rate"},
		{rate: "0mbit", field: "rate"},
	} {
		_, err := ParseNetem(c.delay, c.jitter, "", c.rate)
		if err == nil {
			t.Errorf("delay=%q jitter=%q rate=%q: accepted", c.delay, c.jitter, c.rate)
			continue
		}
		if !strings.HasPrefix(err.Error(), c.field+" ") {
			t.Errorf("delay=%q jitter=%q rate=%q: error %q does not name %s", c.delay, c.jitter, c.rate, err, c.field)
		}
	}
}

func TestNetemLimitsAccepted(t *testing.T) {
	n, err := ParseNetem("274s", "274s", "100%", "8bit")
	if err != nil {
		t.Fatal(err)
	}
	if n.Delay != 274*time.Second || n.Rate != 8 {
		t.Fatalf("got %+v", n)
	}
	// The largest delay still fits the kernel's field: 32 bits of 64 ns ticks.
	if ticks := MaxNetemDelay / (64 * time.Nanosecond); ticks != 1<<32-1 {
		t.Fatalf("MaxNetemDelay is %d ticks", ticks)
	}
	if _, err := ParseNetem(MaxNetemDelay.String(), "", "", ""); err != nil {
		t.Fatalf("the maximum delay is refused: %v", err)
	}
	if r, err := ParseRate("1tbps"); err != nil || r != 8e12 {
		t.Fatalf("1tbps = %d, %v", r, err)
	}
}
