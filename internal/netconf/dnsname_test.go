package netconf

import (
	"regexp"
	"testing"
)

var dnsNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

func TestIsDNSNameMatchesRegexp(t *testing.T) {
	for _, s := range []string{"", "a", "-", ".", "a-", "-a", "a.b", "a-b-c", "A", "aB", "a_b", "0", "a\n", "\na", "a\nb", "é", "ab.", "a..b", "r1", "kube-system", "x/y", "a b"} {
		if got, want := IsDNSName(s), dnsNameRE.MatchString(s); got != want {
			t.Errorf("IsDNSName(%q) = %v, the regexp says %v", s, got, want)
		}
	}
}

func FuzzIsDNSName(f *testing.F) {
	f.Add("r1")
	f.Add("a-b.c")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := IsDNSName(s), dnsNameRE.MatchString(s); got != want {
			t.Errorf("IsDNSName(%q) = %v, the regexp says %v", s, got, want)
		}
	})
}
