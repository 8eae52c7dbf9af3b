package testutil

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// SeedEnv names the variable that fixes the seed of tests' random choices
// (RATCHET_TEST_SEED=12345 go test ...), to replay a failure.
const SeedEnv = "RATCHET_TEST_SEED"

// Rand returns the source of t's random choices (kill times, orders). Its
// seed is $RATCHET_TEST_SEED, or else the clock; t logs it at the start and
// again when it fails, so that a failure names the seed that replays its
// choices. A choice of when to kill a process replays the same delays,
// not the same instant in the process: the scheduler still varies.
func Rand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(SeedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: not an unsigned integer", SeedEnv, s)
		}
		seed = v
	}
	t.Logf("random choices from seed %d (%s=%d replays them)", seed, SeedEnv, seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("failed with random choices from seed %d: rerun with %s=%d", seed, SeedEnv, seed)
		}
	})
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}
