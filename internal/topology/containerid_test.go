package topology

import (
	"regexp"
	"testing"
)

// isContainerID is the regexp it replaced, written out: they must agree.
var containerIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]*$`)

func FuzzIsContainerID(f *testing.F) {
	for _, s := range []string{"", "a", "0abc", "default-e2e-ctr1", "_x", "-x", ".x", "x_y.z-w", "x y", "x/y", "é", "X\x00", "ab\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isContainerID(s), containerIDPattern.MatchString(s); got != want {
			t.Fatalf("isContainerID(%q) = %v, the regexp says %v", s, got, want)
		}
	})
}
