package web_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/labop"
	"github.com/ratchet-cni/ratchet/internal/testutil"
	"github.com/ratchet-cni/ratchet/internal/web"
)

// chromiumPath is Debian's chromium (`make web-deps` installs it); the
// tests never download a browser.
const chromiumPath = "/usr/bin/chromium"

var binDir string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, remove, err := testutil.BuildCommands("ratchet")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer remove()
		binDir = dir
		return m.Run()
	}())
}

// cni runs the plugin for pod lab/POD with the links annotation.
func cni(t *testing.T, cmd, dir, pod string, n ns.NetNS, annotation string) {
	t.Helper()
	if _, err := testutil.PodCNI(binDir, cmd, dir, pod, n.Path(), annotation); err != nil {
		t.Fatal(err)
	}
}

// browser starts a headless chromium in its own process group, killed
// (the whole group) when the test ends, pass or fail.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s: %v (install Debian's chromium: make web-deps, or make deps)", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoFirstRun,
		chromedp.Flag("no-sandbox", true), // root has no user namespace sandbox
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 620),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		}),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	// Starts the browser.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	pid := chromedp.FromContext(ctx).Browser.Process().Pid
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		// chromedp ends the browser it started; its helpers (zygote,
		// renderers) are in its group and go with it here if not.
		if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.Errorf("kill chromium's process group %d: %v", pid, err)
		}
	})
	// Every action after the start is bounded: a stuck browser fails the
	// test, whose cleanups then run, instead of hanging it until go
	// test's timeout panics past them.
	bounded, cancelActions := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelActions)
	return bounded
}

// waitJS waits up to 2 s for the expression to be true in the page: the
// issue's bound for a change to show.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	start := time.Now()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(2*time.Second),
		chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("summary").textContent`))
		t.Fatalf("%s: not within 2 s (%v); the page shows: %s", what, err, state)
	}
	t.Logf("%s: after %v", what, time.Since(start).Round(time.Millisecond))
}

// linkState is the expression of the state the page draws for the link
// with the end lab/POD:IF.
func linkState(end string) string {
	return fmt.Sprintf(`(document.querySelector('.link[data-ends~=%q]') || {dataset: {}}).dataset.state`, end)
}

// TestPageShowsTheLabLive: the page shows a real lab's pods and links
// (three pods, three links, one toward a pod that is not there); a cable
// pulled with ratchetctl's code (labop.Cable) shows as pulled within 2 s,
// and plugged back as up; the page's own button pulls another; a pod that
// goes leaves the page, and comes back. A screenshot is kept
// ($RATCHET_ARTIFACTS, else the test's artifact directory: go test
// -artifacts).
func TestPageShowsTheLabLive(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { testutil.RemoveParking(dir) })
	r1, r2, r3 := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
	cni(t, "ADD", dir, "r1", r1, `[{"name":"e1","ips":["192.0.2.1/24"],"peer":{"pod":"r2","name":"w1"}}]`)
	cni(t, "ADD", dir, "r2", r2, `[{"name":"w1","ips":["192.0.2.2/24"],"peer":{"pod":"r1","name":"e1"}},
		{"name":"w2","ips":["198.51.100.2/24"],"peer":{"pod":"r3","name":"e1"}}]`)
	cni(t, "ADD", dir, "r3", r3, `[{"name":"e1","ips":["198.51.100.3/24"],"peer":{"pod":"r2","name":"w2"}},
		{"name":"e2","ips":["203.0.113.3/24"],"peer":{"pod":"r4","name":"x1"}}]`)
	testutil.MustPing(t, r1, "192.0.2.2")
	testutil.MustPing(t, r3, "198.51.100.2")

	h := web.New(web.StoreSource{Dir: dir, Node: "node-a"}, web.Options{
		Interval: 500 * time.Millisecond,
		Control:  web.CtlControl{Dir: dir},
	})
	srv := httptest.NewServer(h)
	// Cleanups run last first: the browser goes, then the streams end,
	// then the server.
	t.Cleanup(srv.Close)
	t.Cleanup(h.Close)
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the lab drawn", `document.getElementById("graph").dataset.ready === "true"`)
	// What the page drew, read from its DOM.
	drawn, err := chromedp.Run(ctx, chromedp.Evaluate[struct {
		Pods, Links, Present int
		States               []string
	}](`({Pods: +document.getElementById("graph").dataset.pods,
		Links: +document.getElementById("graph").dataset.links,
		Present: document.querySelectorAll('.pod[data-present="true"]').length,
		States: [...document.querySelectorAll('.link')].map(l => l.dataset.state).sort()})`))
	if err != nil {
		t.Fatal(err)
	}
	pods, links, present, states := drawn.Pods, drawn.Links, drawn.Present, drawn.States
	if pods != 3 || present != 3 || links != 3 {
		t.Fatalf("the page shows %d pods (%d drawn as present) and %d links, want 3 and 3", pods, present, links)
	}
	if want := "pending up up"; strings.Join(states, " ") != want {
		t.Fatalf("link states %v, want %s", states, want)
	}

	// A cable pulled as `ratchetctl link down` pulls it.
	if err := labop.Cable(dir, "", "lab/r1:e1", true); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "r1:e1 pulled", linkState("lab/r1:e1")+` === "pulled"`)

	// The page's own button, on the link it shows.
	if err := chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Evaluate[chromedp.Void](`document.querySelector('.link[data-ends~="lab/r3:e1"] .hit').dispatchEvent(new MouseEvent("click", {bubbles: true}))`)(ctx, t)
			return err
		}),
		chromedp.WaitVisible(chromedp.ID("pull")),
		chromedp.Click(chromedp.ID("pull")),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "r3:e1 pulled from the page", linkState("lab/r3:e1")+` === "pulled"`)
	if err := testutil.Ping(r3, "198.51.100.2"); err == nil {
		t.Fatal("r3 reaches r2 over a cable the page pulled")
	}
	// A bad end is refused with ratchetctl's message, and changes nothing.
	refused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch("/api/cable", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({end: "lab/r9:e1", pull: true})}).then(async r => r.status + " " + await r.text())`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(refused, "400 ") || !strings.Contains(refused, "lab/r9:e1") {
		t.Fatalf("a pull of an unknown end: %q, want 400 naming it", refused)
	}

	if err := labop.Cable(dir, "", "lab/r1:e1", false); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "r1:e1 plugged back", linkState("lab/r1:e1")+` === "up"`)

	// The screenshot: one link up, one pulled (the side panel shows it),
	// one pending.
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	out := os.Getenv("RATCHET_ARTIFACTS")
	if out == "" {
		out = t.ArtifactDir()
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(out, "web-topology.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))

	// A pod's panel: its netns and its links.
	panel, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('.pod[data-pod="lab/r2"]').dispatchEvent(new MouseEvent("click", {bubbles: true}));
		document.getElementById("detail").textContent`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lab/r2", r2.Path(), "→ lab/r1:e1 (up)", "→ lab/r3:e1 (pulled)"} {
		if !strings.Contains(panel, want) {
			t.Errorf("r2's panel lacks %q: %q", want, panel)
		}
	}

	// A pod that goes leaves the page.
	cni(t, "DEL", dir, "r1", r1, "")
	waitJS(t, ctx, "r1 gone", `document.getElementById("graph").dataset.pods === "2" &&
		document.querySelector('.pod[data-pod="lab/r1"][data-present="true"]') === null`)
	// And one that comes joins it, its link up again.
	cni(t, "ADD", dir, "r1", r1, `[{"name":"e1","ips":["192.0.2.1/24"],"peer":{"pod":"r2","name":"w1"}}]`)
	waitJS(t, ctx, "r1 back", `document.getElementById("graph").dataset.pods === "3" &&
		document.querySelector('.pod[data-pod="lab/r1"][data-present="true"]') !== null && `+linkState("lab/r1:e1")+` === "up"`)
}
