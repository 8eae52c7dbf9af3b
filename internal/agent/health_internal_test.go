package agent

import "testing"

// The mount that holds the netns directory decides whether the parking
// namespace's pin, made later on the host, shows to ratchetd.
func TestMountPropagation(t *testing.T) {
	const info = `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:25 / /run rw,nosuid shared:5 - tmpfs tmpfs rw
45 30 0:25 /netns /run/netns rw shared:6 - tmpfs tmpfs rw
50 22 0:40 / /run\040x rw - tmpfs tmpfs rw
`
	for _, c := range []struct {
		info, dir, mount string
		receives         bool
	}{
		// A shared mount: as on a systemd host.
		{info, "/run/netns", "/run/netns", true},
		// A directory under a mount takes that mount's propagation.
		{info, "/run/other/dir", "/run", true},
		// A container's volume with mountPropagation: HostToContainer.
		{`1 0 0:1 / / rw - overlay o rw
9 1 0:25 /netns /var/run/netns rw master:6 - tmpfs tmpfs rw
`, "/var/run/netns", "/var/run/netns", true},
		// Without it: private, the case.
		{`1 0 0:1 / / rw - overlay o rw
9 1 0:25 /netns /var/run/netns rw - tmpfs tmpfs rw
`, "/var/run/netns", "/var/run/netns", false},
		// The last mount at a point is the one on top.
		{info + "60 45 0:50 / /run/netns rw - tmpfs tmpfs rw\n", "/run/netns", "/run/netns", false},
		// Escaped mount points.
		{info, "/run x/netns", "/run x", false},
		// Not "/run" for "/runner".
		{info, "/runner", "/", true},
	} {
		mnt, receives := mountPropagation([]byte(c.info), c.dir)
		if mnt != c.mount || receives != c.receives {
			t.Errorf("%s: mount %q, receives %v; want %q, %v", c.dir, mnt, receives, c.mount, c.receives)
		}
	}
}
