package link_test

import (
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/pkg/link"
)

func TestParseNetem(t *testing.T) {
	n, err := link.ParseNetem("10ms", "1ms", "0.5%", "100mbit")
	if err != nil {
		t.Fatal(err)
	}
	want := link.Netem{Delay: 10 * time.Millisecond, Jitter: time.Millisecond, Loss: 0.5, Rate: 100_000_000}
	if *n != want {
		t.Fatalf("got %+v, want %+v", *n, want)
	}
	for _, bad := range [][4]string{
		{"ten", "", "", ""}, {"-1ms", "", "", ""}, {"", "1ms", "", ""}, {"", "", "101%", ""},
		{"", "", "x%", ""}, {"", "", "", "fast"}, {"", "", "", "0mbit"}, {"", "", "", "-5kbit"}, {"2h", "", "", ""},
		// 1bit is 0 bytes a second, which the kernel reads as no limit.
		{"", "", "", "1bit"}, {"", "", "", "NaNmbit"}, {"275s", "", "", ""},
	} {
		if _, err := link.ParseNetem(bad[0], bad[1], bad[2], bad[3]); err == nil {
			t.Errorf("ParseNetem%q accepted", bad)
		}
	}
	rates := map[string]uint64{"8bit": 8, "2kbit": 2000, "1.5gbit": 1_500_000_000, "10mbps": 80_000_000, "8bps": 64}
	for s, want := range rates {
		if got, err := link.ParseRate(s); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
}

func TestNetnsPath(t *testing.T) {
	for _, c := range []struct{ kind, ref, want string }{
		{"name", "red", "/var/run/netns/red"},
		{"path", "/proc/1/ns/net", "/proc/1/ns/net"},
		{"pid", "42", "/proc/42/ns/net"},
	} {
		if got, err := link.NetnsPath(c.kind, c.ref); err != nil || got != c.want {
			t.Errorf("NetnsPath(%s, %s) = %q, %v", c.kind, c.ref, got, err)
		}
	}
	for _, c := range [][2]string{{"name", "../x"}, {"name", ""}, {"path", "rel/x"}, {"pid", "0"}, {"pid", "x"}, {"uid", "1"}} {
		if _, err := link.NetnsPath(c[0], c[1]); err == nil {
			t.Errorf("NetnsPath(%s, %s) accepted", c[0], c[1])
		}
	}
}
