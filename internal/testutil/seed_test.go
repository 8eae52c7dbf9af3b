package testutil

import (
	"slices"
	"strconv"
	"testing"
)

// The same seed gives the same choices; that is what makes a printed
// seed worth printing.
func TestRandReplaysItsSeed(t *testing.T) {
	t.Setenv(SeedEnv, "12345")
	a, b := Rand(t).Perm(20), Rand(t).Perm(20)
	if !slices.Equal(a, b) {
		t.Fatalf("seed %s gave %v then %v", "12345", a, b)
	}
	t.Setenv(SeedEnv, strconv.Itoa(54321))
	if c := Rand(t).Perm(20); slices.Equal(a, c) {
		t.Fatalf("seeds 12345 and 54321 gave the same order %v", c)
	}
}
