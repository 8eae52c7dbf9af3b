package testutil

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

var received = regexp.MustCompile(`(\d+) received`)

// Burst sends count echo requests of size bytes from inside n to addr,
// 5 ms apart (faster than a shaped link carries them), and returns how
// many were answered and how long that took. ping paces itself when
// replies lag, so a shaped link shows in the time more than in the
// count. It needs the ping command (iputils-ping) and root for the short
// interval.
func Burst(n ns.NetNS, addr string, count, size int) (int, time.Duration, error) {
	start := time.Now()
	out, _ := exec.Command("nsenter", "--net="+n.Path(), "ping", "-q", "-c", strconv.Itoa(count), "-i", "0.005",
		"-s", strconv.Itoa(size), "-W", "1", addr).CombinedOutput()
	took := time.Since(start)
	m := received.FindSubmatch(out)
	if m == nil {
		return 0, took, fmt.Errorf("ping %s from %s: no summary:\n%s", addr, n.Path(), out)
	}
	got, err := strconv.Atoi(string(m[1]))
	return got, took, err
}
