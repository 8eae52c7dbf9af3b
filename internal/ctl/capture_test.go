package ctl_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// startCapture starts ratchetctl capture with args and waits until it
// says it captures; the pods then ping each other until it ends. It
// returns what the command wrote to stdout.
func startCapture(t *testing.T, r1, r2 ns.NetNS, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "ratchetctl"), append([]string{"capture"}, args...)...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lines := bufio.NewScanner(errPipe)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "capturing ") {
		cmd.Wait()
		t.Fatalf("capture did not start: %q", lines.Text())
	}
	var rest bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&rest, errPipe); close(copied) }()
	ctx, cancel := context.WithCancel(context.Background())
	pinged := make(chan struct{})
	go func() {
		defer close(pinged)
		for ctx.Err() == nil {
			testutil.Ping(r1, "192.0.2.2")
			testutil.Ping(r2, "192.0.2.1")
		}
	}()
	done := make(chan error, 1)
	go func() { <-copied; done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Error("capture did not stop within 20 s")
		cmd.Process.Kill()
		err = <-done
	}
	cancel()
	<-pinged
	if err != nil {
		t.Fatalf("capture: %v: %s", err, rest.String())
	}
	t.Logf("capture: %s", strings.TrimSpace(rest.String()))
	return stdout.Bytes()
}

// echo is an ICMP echo seen in a capture.
type echo struct {
	src, dst string
	reply    bool
	dir      pcapgo.NgEpbFlag
}

// readEchoes reads a pcapng file and returns its frames' count, its
// interfaces' names and the ICMP echoes it holds.
func readEchoes(t *testing.T, file []byte) (int, []string, []echo) {
	t.Helper()
	r, err := pcapgo.NewNgReader(bytes.NewReader(file), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("pcapng: %v", err)
	}
	frames := 0
	var echoes []echo
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("pcapng frame %d: %v", frames, err)
		}
		frames++
		if ci.CaptureLength != len(data) || ci.Length < ci.CaptureLength {
			t.Errorf("frame %d: capture info %+v for %d bytes", frames, ci, len(data))
		}
		p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		icmp, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if ip == nil || icmp == nil {
			continue
		}
		e := echo{src: ip.SrcIP.String(), dst: ip.DstIP.String()}
		if opts.Flags != nil {
			e.dir = opts.Flags.Direction
		}
		switch icmp.TypeCode.Type() {
		case layers.ICMPv4TypeEchoRequest:
		case layers.ICMPv4TypeEchoReply:
			e.reply = true
		default:
			continue
		}
		echoes = append(echoes, e)
	}
	var names []string
	for i := 0; i < r.NInterfaces(); i++ {
		intf, _ := r.Interface(i)
		names = append(names, intf.Name)
	}
	return frames, names, echoes
}

// checkEchoes checks that echoes hold requests and replies both ways
// between r1 (192.0.2.1) and r2 (192.0.2.2), as seen on r1:e1's parked
// end: what r1 sends arrives there (inbound), what r2 sends leaves toward
// r1 (outbound).
func checkEchoes(t *testing.T, echoes []echo) {
	t.Helper()
	in, out := pcapgo.NgEpbFlagDirectionInbound, pcapgo.NgEpbFlagDirectionOutbound
	want := []echo{
		{"192.0.2.1", "192.0.2.2", false, in},
		{"192.0.2.2", "192.0.2.1", true, out},
		{"192.0.2.2", "192.0.2.1", false, out},
		{"192.0.2.1", "192.0.2.2", true, in},
	}
	for _, w := range want {
		found := false
		for _, e := range echoes {
			found = found || e == w
		}
		if !found {
			t.Errorf("no %+v among the echoes captured: %+v", w, echoes)
		}
	}
	for _, e := range echoes {
		if (e.src == "192.0.2.1") != (e.dir == in) {
			t.Errorf("echo %+v: wrong direction", e)
		}
	}
}

func TestCaptureToFile(t *testing.T) {
	dir, r1, r2 := lab(t)
	file := filepath.Join(t.TempDir(), "e1.pcapng")
	startCapture(t, r1, r2, "--store", dir, "-c", "40", "-w", file, "lab/r1:e1")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	frames, names, echoes := readEchoes(t, data)
	if frames != 40 {
		t.Errorf("%d frames, want 40 (-c 40)", frames)
	}
	if len(names) != 1 || names[0] == "" {
		t.Errorf("interfaces %q, want one: the parked end", names)
	}
	checkEchoes(t, echoes)
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Log("tshark is not installed: the file is read with pcapgo only")
		return
	}
	out, err := exec.Command("tshark", "-r", file, "-Y", "icmp.type == 8 && ip.src == 192.0.2.2", "-T", "fields", "-e", "ip.dst").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "192.0.2.1") {
		t.Errorf("tshark -r: %v\n%s", err, out)
	}
}

// TestCaptureSnapLength checks -s: every frame is cut at the snap
// length, and keeps its length on the wire (a ping's frame is 98 bytes).
func TestCaptureSnapLength(t *testing.T) {
	dir, r1, r2 := lab(t)
	file := filepath.Join(t.TempDir(), "snap.pcapng")
	startCapture(t, r1, r2, "--store", dir, "-c", "8", "-s", "60", "-w", file, "lab/r1:e1")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewNgReader(bytes.NewReader(data), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("pcapng: %v", err)
	}
	if intf, err := r.Interface(0); err != nil || intf.SnapLength != 60 {
		t.Errorf("interface block: snap length %d (%v), want 60", intf.SnapLength, err)
	}
	frames, cut := 0, 0
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("pcapng frame %d: %v", frames, err)
		}
		frames++
		if len(data) > 60 || ci.CaptureLength != len(data) {
			t.Errorf("frame %d: %d bytes kept (capture length %d), want at most 60", frames, len(data), ci.CaptureLength)
		}
		if ci.Length >= 98 && len(data) == 60 {
			cut++
		}
	}
	if frames != 8 || cut == 0 {
		t.Errorf("%d frames, %d of them cut at 60 bytes from 98 or more; want 8, some cut", frames, cut)
	}
}

func TestCaptureToPipeStopsAtDuration(t *testing.T) {
	dir, r1, r2 := lab(t)
	// Both ends of the link: two interface blocks, streamed to stdout.
	start := time.Now()
	data := startCapture(t, r1, r2, "--store", dir, "--duration", "1500ms", "-w", "-", "lab/r1:e1", "lab/r2:w1")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("--duration 1500ms took %v", took)
	}
	frames, names, echoes := readEchoes(t, data)
	if len(names) != 2 || names[0] == names[1] {
		t.Errorf("interfaces %q, want both parked ends", names)
	}
	if frames < 4 || len(echoes) < 4 {
		t.Fatalf("%d frames, %d echoes in 1.5 s of pings both ways", frames, len(echoes))
	}
}

func TestCaptureStopsCleanlyOnSignal(t *testing.T) {
	dir, r1, _ := lab(t)
	file := filepath.Join(t.TempDir(), "x.pcapng")
	cmd := exec.Command(filepath.Join(binDir, "ratchetctl"), "capture", "--store", dir, "-w", file, "lab/r1:e1")
	errPipe, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(errPipe)
	if !lines.Scan() {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("capture did not start")
	}
	testutil.MustPing(t, r1, "192.0.2.2")
	cmd.Process.Signal(os.Interrupt)
	io.Copy(io.Discard, errPipe)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("capture after SIGINT: %v", err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	frames, _, echoes := readEchoes(t, data)
	if frames < 2 || len(echoes) < 2 {
		t.Errorf("%d frames, %d echoes after one ping, want a request and its reply", frames, len(echoes))
	}
}

func TestCaptureBadArguments(t *testing.T) {
	dir, _, _ := lab(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-w", "-"}, "link end"},
		{[]string{"lab/r1:e1"}, "-w"},
		{[]string{"-w", "-", "-c", "x", "lab/r1:e1"}, "-c"},
		{[]string{"-w", "-", "-c", "-1", "lab/r1:e1"}, "-c"},
		{[]string{"-w", "-", "--duration", "soon", "lab/r1:e1"}, "--duration"},
		{[]string{"-w", "-", "--filter", "icmp", "lab/r1:e1"}, "--filter"},
		{[]string{"-w", "-", "-s", "10", "lab/r1:e1"}, "-s"},
		{[]string{"-w", "-", "-s", "all", "lab/r1:e1"}, "-s"},
		{[]string{"-w", "-", "r1:e1"}, "NAMESPACE/POD:IFNAME"},
		{[]string{"-w", "-", "lab/r9:e1"}, "lab/r9:e1"},
	} {
		out, errOut, code := ctl(t, nil, append([]string{"capture", "--store", dir}, c.args...)...)
		first, _, _ := strings.Cut(errOut, "\n")
		if code == 0 || out != "" || !strings.Contains(first, c.want) {
			t.Errorf("capture %q: exit %d, stdout %q, stderr %q; want a failure naming %s", c.args, code, out, errOut, c.want)
		}
	}
}
